"""Kernels of Dynasor (imported as ``dynasor.kernels``)."""
