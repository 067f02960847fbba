"""SGLang frontend programs on Dynasor: an ``sgl.function`` run is one program, with certainty hints.

    import sglang as sgl
    from dynasor.frontend import DynasorEndpoint, fork_until_certain, run_program, set_remaining_work

    @sgl.function
    def solve(s, question):
        s += FEW_SHOT + question
        set_remaining_work(s, 16 * 64)        # a scheduling hint carried by the requests that follow
        votes = fork_until_certain(s, n_max=16, detect_at=5, threshold=0.7, max_tokens=64, stop="\\n")
        s += f" The answer is {votes.answer}."

    state, pid = run_program(solve, backend=DynasorEndpoint("http://127.0.0.1:30000"), question="...",
                             temperature=0.7)

Every request the run sends (``gen``, fork branches, ``select``, fork prefix commits) carries the
same program id, so the server gangs, orders and aborts it as one program. ``func.run(backend=
DynasorEndpoint(url))`` and ``run_batch`` work too (one program per run; ``program_id(state)``).
"""

from dynasor.frontend.certain import CertainFork, fork_until_certain
from dynasor.frontend.endpoint import DynasorEndpoint, ProgramHandle
from dynasor.frontend.program import (
    ProgramRun,
    abort_program,
    as_endpoint,
    program_id,
    program_of,
    run_program,
    set_remaining_work,
)

__all__ = [
    "CertainFork", "DynasorEndpoint", "ProgramHandle", "ProgramRun", "abort_program", "as_endpoint",
    "fork_until_certain", "program_id", "program_of", "run_program", "set_remaining_work",
]
