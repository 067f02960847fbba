"""Self-consistency as an ``sgl.function`` on Dynasor: fork samples until their answers agree.

    python examples/self_consistency_fork.py --url http://127.0.0.1:30000

The whole function runs as one Dynasor program: its branches are gang-scheduled (their shared
prompt is prefilled once) and, as soon as certaindex over the first answers reaches the threshold,
the branches still waiting or running are aborted in the engine with one call. The default model
(SmolLM2-135M) needs a few-shot completion prompt for arithmetic, hence ``FEW_SHOT``.
"""

from __future__ import annotations

import argparse
import time

import sglang as sgl

from dynasor.client import DynasorClient
from dynasor.frontend import DynasorEndpoint, fork_until_certain, run_program, set_remaining_work

FEW_SHOT = (
    "Q: What is 2 + 3?\nA: 2 + 3 = 5. The answer is \\boxed{5}.\n\n"
    "Q: What is 7 - 4?\nA: 7 - 4 = 3. The answer is \\boxed{3}.\n\n"
    "Q: What is 6 + 1?\nA: 6 + 1 = 7. The answer is \\boxed{7}.\n\n"
)


@sgl.function
def solve(s, question: str, n_max: int, detect_at: int, threshold: float, max_tokens: int):
    s += FEW_SHOT + f"Q: {question}\nA:"
    set_remaining_work(s, n_max * max_tokens)  # an upper bound for the server's shortest-job-first order
    result = fork_until_certain(s, n_max=n_max, detect_at=detect_at, threshold=threshold, name="sample",
                                max_tokens=max_tokens, stop="\n")
    s["result"] = result
    s += f" The answer is \\boxed{{{result.answer}}}."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:30000")
    parser.add_argument("--question", default="What is 4 + 3?")
    parser.add_argument("--n-max", type=int, default=16)
    parser.add_argument("--detect-at", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.3)
    args = parser.parse_args(argv)

    started = time.monotonic()
    # temperature is SglFunction.run's default sampling parameter of every gen in the function
    state, pid = run_program(solve, backend=DynasorEndpoint(args.url), question=args.question, n_max=args.n_max,
                             detect_at=args.detect_at, threshold=args.threshold, max_tokens=args.max_tokens,
                             temperature=args.temperature)
    result = state["result"]
    elapsed = time.monotonic() - started
    with DynasorClient(args.url) as client:
        requests = client.program(pid)["requests"]  # read it before the finished program expires
    print(f"answer: {result.answer}   (votes: {result.answers})")
    print(f"certaindex {result.certaindex:.2f}, {'stopped early' if result.stopped_early else 'ran to n_max'}: "
          f"{result.started} branches started, {len(result.answers)} answered, {result.aborted} aborted, "
          f"{result.completion_tokens} tokens, {elapsed:.1f}s")
    print(f"server's view of program {pid[:8]}...: {requests}")


if __name__ == "__main__":
    main()
