"""Reasoning programs: the ReasoningProgram API and built-in algorithms."""

from dynasor.programs.base import ProgramResult, ReasoningProgram
from dynasor.programs.self_consistency import SelfConsistency

__all__ = ["ProgramResult", "ReasoningProgram", "SelfConsistency"]
