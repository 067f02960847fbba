"""Tagged requests are tracked per program in the scheduler's program table."""

import asyncio

from dynasor.client import AsyncDynasorClient

PROMPTS = ["Count: 1, 2, 3,", "The capital of France is", "Q: What is 2 + 3?\nA:", "Once upon a time"]


async def test_concurrent_tagged_requests_are_counted_per_program(url):
    async with AsyncDynasorClient(url) as client:
        a, b = client.new_program(), client.new_program()
        jobs = [(pid, prompt, 6 + i) for i, (pid, prompt) in enumerate((p, q) for p in (a, b) for q in PROMPTS)]
        outs = await asyncio.gather(*[
            client.generate(prompt, {"max_new_tokens": n, "temperature": 0.7, "ignore_eos": True}, program=pid)
            for pid, prompt, n in jobs
        ])
        assert all(o["text"] for o in outs)
        listed = {p["program_key"]: p for p in await client.programs()}
        for pid in (a, b):
            mine = [o["meta_info"] for (owner, _, _), o in zip(jobs, outs) if owner == pid]
            summary = listed[(await client.program(pid))["program_key"]]
            assert summary["requests"] == {"waiting": 0, "running": 0, "finished": 4, "aborted": 0, "total": 4}
            assert summary["prompt_tokens"] == sum(m["prompt_tokens"] for m in mine)
            assert summary["generated_tokens"] == sum(m["completion_tokens"] for m in mine)
            assert summary["state"] == "done"
            assert summary["first_arrival"] <= summary["last_service"]
            assert "program_id" not in summary
        detail = await client.program(a)
        assert detail["program_id"] == a and detail["program_key"] not in (a, b)


async def test_untagged_requests_stay_stock(url):
    async with AsyncDynasorClient(url) as client:
        before = {p["program_key"] for p in await client.programs()}
        greedy = {"max_new_tokens": 12, "temperature": 0.0}
        plain = await client.generate("The capital of France is", greedy)
        tagged = await client.generate("The capital of France is", greedy, program=client.new_program())
        assert plain["text"] == tagged["text"] and plain["text"]
        after_plain = {p["program_key"] for p in await client.programs()}
        assert len(after_plain - before) == 1  # only the tagged request created a program


def metric(text: str, name: str) -> float:
    """Sum of a Prometheus metric's samples (over label sets) in /metrics text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


async def test_program_metrics_are_exported(url):
    async with AsyncDynasorClient(url) as client:
        before = (await client._http.get("/metrics")).text
        pid = client.new_program()
        await asyncio.gather(*[client.generate("Hi", {"max_new_tokens": 4, "ignore_eos": True}, program=pid)
                               for _ in range(2)])
        after = (await client._http.get("/metrics")).text
    for name in ("dynasor:programs_started_total", "dynasor:programs_done_total",
                 "dynasor:program_latency_seconds_count"):
        assert metric(after, name) == metric(before, name) + 1, name
    assert metric(after, "dynasor:program_latency_seconds_sum") > metric(before, "dynasor:program_latency_seconds_sum")
    assert "dynasor:live_programs" in after and "dynasor:program_escalations_total" in after
