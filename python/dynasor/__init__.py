"""Dynasor: LLM serving for reasoning programs, on the SGLang runtime."""

__version__ = "0.1.0"
