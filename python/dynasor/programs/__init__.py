"""Reasoning programs: the ReasoningProgram API and built-in algorithms."""

from dynasor.core.result import ProgramResult
from dynasor.programs.base import ReasoningProgram
from dynasor.programs.cot import DynasorCoT
from dynasor.programs.mcts import MCTS
from dynasor.programs.rebase import Rebase
from dynasor.programs.self_consistency import SelfConsistency

__all__ = ["MCTS", "DynasorCoT", "ProgramResult", "ReasoningProgram", "Rebase", "SelfConsistency"]
