"""Dynasor-CoT as an ``sgl.function``: reason in chunks, probe the answer after each, stop when it settles.

    python examples/cot.py --url http://127.0.0.1:30000

After every chunk of reasoning a forked probe asks the model for its answer right now (the probe
continues the text with "... **Final Answer** \\boxed{" and its tokens never enter the reasoning),
while the next chunk already runs. When the last ``window`` probes agree with no hesitation word
(``probe_consistent``), the program's in-flight chunk is aborted in the engine and the probed answer
is the result. Everything the function sends is one Dynasor program; ``set_remaining_work`` keeps
the server's shortest-job-first estimate honest as the budget shrinks. The default model
(SmolLM2-135M) needs a few-shot completion prompt for arithmetic, hence ``FEW_SHOT``.
"""

from __future__ import annotations

import argparse
import time

import sglang as sgl

from dynasor.certaindex import extract_answer, extract_probe_answer, probe_consistent
from dynasor.frontend import DynasorEndpoint, abort_program, run_program, set_remaining_work
from dynasor.programs.cot import PROBE_SUFFIX

FEW_SHOT = (
    "Q: What is 12 + 7 + 5?\nA: First, 12 + 7 = 19. Then 19 + 5 = 24. The answer is \\boxed{24}.\n\n"
    "Q: What is 9 - 4 + 10?\nA: First, 9 - 4 = 5. Then 5 + 10 = 15. The answer is \\boxed{15}.\n\n"
    "Q: What is 6 + 6 - 3?\nA: First, 6 + 6 = 12. Then 12 - 3 = 9. The answer is \\boxed{9}.\n\n"
)
PROBE_TOKENS = 12


@sgl.function
def cot(s, question: str, chunk_tokens: int, window: int, max_chunks: int):
    s += FEW_SHOT + f"Q: {question}\nA:"
    gen = dict(max_tokens=chunk_tokens, stop="\n")
    s += sgl.gen("chunk0", **gen)
    answers: list[str] = []
    texts: list[str] = []
    s["exit"], s["answer"] = "budget", None
    for k in range(max_chunks):
        set_remaining_work(s, (max_chunks - k) * (chunk_tokens + PROBE_TOKENS))  # waits for chunk k
        if s.get_meta_info(f"chunk{k}")["finish_reason"]["type"] == "stop":
            s["exit"], s["answer"] = "finished", extract_answer(s.text()[len(FEW_SHOT):])
            return
        probe = s.fork(1)
        probe += PROBE_SUFFIX + sgl.gen(f"probe{k}", max_tokens=PROBE_TOKENS)
        if k + 1 < max_chunks:
            s += sgl.gen(f"chunk{k + 1}", **gen)  # the next chunk runs while the probe answers
        probe.join()
        texts.append(s[f"probe{k}"][0])
        answers.append(extract_probe_answer(texts[-1]))
        if probe_consistent(answers, texts, window):
            abort_program(s)  # the in-flight chunk: its tokens are no longer needed
            s["exit"], s["answer"] = "probe", answers[-1]
            return
    s["answer"] = extract_answer(s.text()[len(FEW_SHOT):]) or next((a for a in reversed(answers) if a), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:30000")
    parser.add_argument("--question", default="What is 23 + 14 + 8?")
    parser.add_argument("--chunk-tokens", type=int, default=8)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--max-chunks", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.3)
    args = parser.parse_args(argv)

    started = time.monotonic()
    # temperature is SglFunction.run's default sampling parameter of every gen in the function
    state, pid = run_program(cot, backend=DynasorEndpoint(args.url), question=args.question,
                             chunk_tokens=args.chunk_tokens, window=args.window, max_chunks=args.max_chunks,
                             temperature=args.temperature)
    state.sync()
    chunks = [state.get_meta_info(f"chunk{k}") for k in range(args.max_chunks) if f"chunk{k}" in state]
    tokens = sum(m["completion_tokens"] for m in chunks if m)
    print(f"transcript: {state.text()[len(FEW_SHOT):].strip()}")
    print(f"answer: {state['answer']}   (exit: {state['exit']}, {len(chunks)} chunks, {tokens} reasoning tokens, "
          f"{time.monotonic() - started:.1f}s, program {pid[:8]}...)")


if __name__ == "__main__":
    main()
