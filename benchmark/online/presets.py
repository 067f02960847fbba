"""Sizes and systems of ``bench_online``'s presets (``--preset NAME``; flags the user gives win)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OnlinePreset:
    """Every size a preset sets (flags the user gives win)."""

    rates: str
    duration: float | None
    programs_per_rate: int | None
    drain_max: float
    cap: int
    detect_at: int
    max_new_tokens: int
    temperature: float
    levels: str
    oracle_runs: int
    slo_scales: str
    arrivals: str
    max_running_requests: int
    slo_scale: float = 2.0
    target: float = 0.9
    sc_launch: str = "staged"
    systems: str = "all"
    overlap_schedule: bool = True  # SGLang's default; False adds --disable-overlap-schedule to every server
    dp_size: int = 1  # SGLang's data-parallel ranks per server (--dp-size)
    workers: int = 1  # servers per system behind SGLang's router (1: no router)
    rounds: int = 4  # alternating rounds (every system once per round, order swapped each round)


# --quick on 2 CPU cores: 5 servers x ~30 s start + ~25 s of oracle solo runs + 6 systems x (3 windows of one
# 8-program trace, 40 + 23 + 16 s of arrivals, each drained for up to ~10 s) ≈ 13-14 minutes.
PRESETS: dict[str, OnlinePreset] = {
    "quick": OnlinePreset(rates="0.2,0.35,0.5", duration=None, programs_per_rate=8, drain_max=10.0, cap=6,
                          detect_at=3, max_new_tokens=32, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=2,
                          slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16, rounds=2),
    # --preset cpu-powered: >= 100 programs per rate per system, paired bootstrap intervals; small programs (4
    # branches of <= 24 tokens) so that 2 CPU cores reach the knee at a rate where 100 programs take minutes, not
    # hours. Rates: a pilot with 16-program windows put SGLang fcfs's knee (90% at SLO scale 2) near 0.9/s, but a
    # first powered run at 0.6-1.5/s (online_cpu_overload.json) found every system below 90% at scale 2 at every
    # rate: over 100-program windows the queue builds up where 16 programs did not. So 0.3-0.6/s.
    # 4 systems x 3 rates x 100 programs: about an hour.
    "cpu-powered": OnlinePreset(rates="0.3,0.45,0.6", duration=None, programs_per_rate=100, drain_max=10.0, cap=4,
                                detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=3,
                                slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                                systems="sglang-fcfs,sglang-lpm,gang-sjf,gang-sjf+certaindex"),
    # --preset sim-validation: the live run the simulator is checked against (benchmark.sim.validate): every
    # request recorded, the cpu-powered program shape, 24 programs per rate (per-program latencies are compared,
    # so a few windows suffice), rates from light to the knee. About 20 minutes. Without the overlap scheduler,
    # which the simulated engine does not model (and the CPU profile is fitted without).
    "sim-validation": OnlinePreset(rates="0.3,0.45,0.6", duration=None, programs_per_rate=24, drain_max=10.0, cap=4,
                                   detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5",
                                   oracle_runs=2, slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                                   systems="sglang-fcfs,sglang-lpm,gang-sjf,gang-sjf+certaindex",
                                   overlap_schedule=False),
    # --preset dp-affinity: program affinity across data-parallel ranks (issue 13): the full system on
    # --dp-size 2 (one core per rank) with every request left to SGLang's dispatch (run first: the latency
    # ratios are against it), then with its programs kept on one rank; the cpu-powered program shape, one
    # 100-program trace. About 10 minutes.
    "dp-affinity": OnlinePreset(rates="0.6", duration=None, programs_per_rate=100, drain_max=10.0, cap=4,
                                detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=2,
                                slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                                systems="gang-sjf+certaindex+sglang-dispatch,gang-sjf+certaindex", dp_size=2),
    # --preset router-affinity: the same comparison across two servers behind SGLang's router (smg): the
    # router's default policy (cache_aware) deciding per request, then Dynasor's routing key (manual policy,
    # one worker per program). About 10 minutes.
    "router-affinity": OnlinePreset(rates="0.6", duration=None, programs_per_rate=100, drain_max=10.0, cap=4,
                                    detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5",
                                    oracle_runs=2, slo_scales="1,1.5,2,3,4", arrivals="scaled",
                                    max_running_requests=16,
                                    systems="gang-sjf+certaindex+sglang-dispatch,gang-sjf+certaindex", workers=2),
    "full": OnlinePreset(rates="0.5,1,2,4,8", duration=300.0, programs_per_rate=None, drain_max=300.0, cap=20,
                         detect_at=5, max_new_tokens=256, temperature=0.8, levels="1:0.25,2:0.25,3:0.25,4:0.25",
                         oracle_runs=5, slo_scales="0.5,1,1.5,2,2.5,3,4", arrivals="poisson", max_running_requests=0,
                         rounds=2),
    # --preset parity: never slower than stock SGLang (issue 25): the homogeneous cpu-powered program shape (K = 4,
    # <= 24 tokens, one hint) at two rates near saturation (a 20-program pilot of stock fcfs on the 2-core AMD
    # build machine, float32: mean latency 8.6 / 8.9 / 10.9 s at 0.2 / 0.3 / 0.4 per s, solo 5.5 s, a waiting
    # queue in 24% of samples at 0.4), stock fcfs against Dynasor's default server with even
    # allocation (the same work on both: scheduling and the hooks are all that differ), and the Dynasor server
    # with SGLang's fcfs order (the hooks alone; its step log gives the simulator's fcfs decisions); 4
    # alternating rounds of 40 programs per rate, plus untagged decode throughput (SGLang's bench_serving) in
    # each turn. About an hour.
    "parity": OnlinePreset(rates="0.3,0.4", duration=None, programs_per_rate=40, drain_max=10.0, cap=4,
                           detect_at=2, max_new_tokens=24, temperature=0.3, levels="0:0.5,1:0.5", oracle_runs=2,
                           slo_scales="1,1.5,2,3,4", arrivals="scaled", max_running_requests=16,
                           systems="sglang-fcfs,gang-sjf,dynasor-fcfs", rounds=4),
}
