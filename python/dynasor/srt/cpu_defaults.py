"""Flags and environment that make SGLang 0.5.23 serve on a CPU-only machine.

Used for Dynasor servers and for the stock SGLang baselines of the benchmarks alike, so both run
with the same engine settings. Explicit user flags always win over these defaults.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping, Sequence
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 30000
# Entries in each of torch's two oneDNN caches on CPU: ideep's (LRU_CACHE_CAPACITY) and oneDNN's
# primitive cache (ONEDNN_PRIMITIVE_CACHE_CAPACITY).
ONEDNN_CACHE_CAPACITY = 128
ONEDNN_CACHE_VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")
# SGLang's CPU core sets, one per rank ("0-3|4-7"); without it SGLang wants one NUMA node per rank.
CPU_BIND_VARIABLE = "SGLANG_CPU_OMP_THREADS_BIND"
PARALLEL_FLAGS = (("--dp-size", "--data-parallel-size"), ("--tp-size", "--tensor-parallel-size"),
                  ("--pp-size", "--pipeline-parallel-size"))

# (flag, value or None for a boolean switch); the dtype is the CPU's (cpu_dtype)
CPU_DEFAULT_FLAGS: list[tuple[str, str | None]] = [
    ("--device", "cpu"),
    ("--attention-backend", "torch_native"),
    ("--sampling-backend", "pytorch"),
    ("--disable-cuda-graph", None),
    ("--max-total-tokens", "32768"),
]
COMMON_DEFAULT_FLAGS: list[tuple[str, str | None]] = [
    ("--host", DEFAULT_HOST),
    ("--port", str(DEFAULT_PORT)),
    ("--sleep-on-idle", None),
]


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def flag_given(argv: list[str], flag: str) -> bool:
    """True if ``flag`` (dash or underscore spelling, ``--f v`` or ``--f=v``) is in argv."""
    spellings = {flag, "--" + flag[2:].replace("-", "_")}
    return any(arg in spellings or arg.split("=", 1)[0] in spellings for arg in argv)


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in argv (``--f v`` or ``--f=v``, dash or underscore spelling); the last wins."""
    spellings = {flag, "--" + flag[2:].replace("-", "_")}
    value = None
    for i, arg in enumerate(argv):
        name, eq, inline = arg.partition("=")
        if name in spellings:
            value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def cpu_dtype() -> str:
    """The model dtype a CPU serves fastest. With AVX-512 (and AMX) oneDNN runs bfloat16 matmuls
    natively; on an AVX2 CPU torch falls back to a bfloat16 path ~6x slower than float32 at a decode
    batch of 16 (measured on a 2-core AMD EPYC: 3.2 ms vs 0.56 ms for one 576x1536 layer), so
    float32 there."""
    import torch

    return "bfloat16" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else "float32"


def cpu_default_flags() -> list[tuple[str, str | None]]:
    """Every flag a CPU server (or in-process engine) gets unless given: the fixed ones and the dtype."""
    return [*CPU_DEFAULT_FLAGS, ("--dtype", cpu_dtype())]


def with_defaults(argv: list[str], on_cpu: bool) -> list[str]:
    """``argv`` plus every default flag the user did not give."""
    out = list(argv)
    defaults = COMMON_DEFAULT_FLAGS + (cpu_default_flags() if on_cpu else [])
    for flag, value in defaults:
        if not flag_given(out, flag):
            out += [flag] if value is None else [flag, value]
    return out


def onednn_cache_env() -> dict[str, str]:
    """Bounds on torch's oneDNN caches for a CPU server process; the caller's values win.

    bfloat16 linear layers run as oneDNN matmuls whose primitives are cached per token count of
    the batch, about 1 MB each, up to 1,024 per cache by default. A server keeps meeting new batch
    sizes, so its memory grew ~3 MB/min through a 30-minute soak
    (benchmark/results/soak_onednn_default.json). 128 entries bound it and still hold the decode
    batch sizes in use (both caches are LRU); a miss costs one primitive creation (~0.3 ms).
    """
    return {name: os.environ.get(name, str(ONEDNN_CACHE_CAPACITY)) for name in ONEDNN_CACHE_VARIABLES}


def ranks_in_argv(argv: list[str]) -> int:
    """Processes of one server, data x tensor x pipeline parallel, as SGLang counts them for CPU binding."""
    ranks = 1
    for names in PARALLEL_FLAGS:
        values = [v for v in (flag_value(argv, name) for name in names) if v is not None]
        ranks *= int(values[-1]) if values else 1
    return ranks


def _cpu_list(cores: Sequence[int]) -> str:
    contiguous = list(cores) == list(range(cores[0], cores[-1] + 1))
    if len(cores) == 1:
        return str(cores[0])
    return f"{cores[0]}-{cores[-1]}" if contiguous else ",".join(map(str, cores))


def cpu_rank_binding(ranks: int, cores: Sequence[int] | None = None) -> str | None:
    """SGLang's per-rank core sets for ``ranks`` CPU processes: the cores this process may use, split
    into even contiguous shares ("0|1", "0-3|4-7"); None for a single rank (SGLang binds it itself)."""
    if ranks <= 1:
        return None
    usable = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if len(usable) < ranks:
        raise ValueError(f"{ranks} ranks (dp x tp x pp) need at least one CPU core each; this process may use "
                         f"{len(usable)}. Give fewer ranks, or set {CPU_BIND_VARIABLE} yourself")
    share, extra = divmod(len(usable), ranks)
    groups, start = [], 0
    for rank in range(ranks):
        end = start + share + (1 if rank < extra else 0)
        groups.append(_cpu_list(usable[start:end]))
        start = end
    return "|".join(groups)


def bind_cpu_ranks(ranks: int, env: MutableMapping[str, str] = os.environ) -> None:
    """Fill in ``SGLANG_CPU_OMP_THREADS_BIND`` for a multi-rank CPU server when the caller did not."""
    binding = None if CPU_BIND_VARIABLE in env else cpu_rank_binding(ranks)
    if binding is not None:
        env[CPU_BIND_VARIABLE] = binding


def cpu_env() -> dict[str, str]:
    """Environment for an SGLang server process on CPU.

    ``SGLANG_USE_CPU_ENGINE`` selects SGLang's CPU code paths. The file-based torch.distributed
    rendezvous (a fresh file per launch) keeps the TCPStore from listening on every interface;
    ``GLOO_SOCKET_IFNAME=lo`` keeps gloo on loopback. One OpenMP thread per process avoids the
    barrier spinning that collapses throughput when two busy processes share two cores.
    """
    rendezvous = Path(tempfile.mkdtemp(prefix="dynasor-dist-")) / "init"
    return {
        "SGLANG_USE_CPU_ENGINE": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "SGLANG_DISTRIBUTED_INIT_METHOD_OVERRIDE": f"file://{rendezvous}",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        **onednn_cache_env(),
    }


def stock_sglang_command(model_path: str, argv: list[str], python: str) -> tuple[list[str], dict[str, str]]:
    """Command and environment of a stock SGLang server with the same engine settings."""
    on_cpu = not has_cuda()
    args = with_defaults(["--model-path", model_path, *argv], on_cpu)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNASOR_") and k != "TRITON_INTERPRET"}
    if on_cpu:
        env.update(cpu_env())
        bind_cpu_ranks(ranks_in_argv(args), env)
    return [python, "-m", "sglang.launch_server", *args], env
