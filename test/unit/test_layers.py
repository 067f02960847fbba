"""The package's import graph: no cycle between modules, and layers that point one way.

Every import statement counts (module level, inside functions, under ``TYPE_CHECKING``): a lazy or
type-only import is still a dependency. Modules are named as installed (``kernels/`` and
``scheduler/`` are ``dynasor.kernels`` and ``dynasor.scheduler``, see setup.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"dynasor": ROOT / "python" / "dynasor", "dynasor.kernels": ROOT / "kernels",
           "dynasor.scheduler": ROOT / "scheduler"}


def module_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


MODULES = module_files()


def imported_names(path: Path, module: str) -> set[str]:
    """The modules the import statements of ``path`` name: ``import a.b`` names ``a.b``; ``from a
    import b`` names ``a.b`` when that is a module of the package, else ``a`` (relative resolved)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return names


def graph() -> dict[str, set[str]]:
    """Edges between the package's own modules."""
    return {module: {name for name in imported_names(path, module) if name in MODULES} - {module}
            for module, path in MODULES.items()}


def external(module: str) -> set[str]:
    return {name for name in imported_names(MODULES[module], module) if not name.startswith("dynasor")}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


EDGES = graph()


def test_the_graph_sees_the_package():
    assert {"dynasor.core.tag", "dynasor.kernels.entropy", "dynasor.scheduler.ordering", "dynasor.srt.hooks"} <= set(MODULES)
    assert "dynasor.scheduler.program_table" in EDGES["dynasor.srt.context"]
    assert "dynasor.core.tag" in EDGES["dynasor.scheduler.program_table"]


def test_a_planted_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_package_modules():
    assert cycles(EDGES) == []


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


LAYERS = {
    # layer: the dynasor packages it may import (besides itself)
    "dynasor.core": (),
    "dynasor.scheduler": ("dynasor.core",),
    "dynasor.kernels": ("dynasor.core",),
    "dynasor.certaindex": ("dynasor.core",),
    "dynasor.datasets": ("dynasor.core",),
    "dynasor.client": ("dynasor.core",),
    "dynasor.rewards": ("dynasor.core", "dynasor.client"),
    "dynasor.programs": ("dynasor.core", "dynasor.certaindex", "dynasor.rewards"),
    "dynasor.program_runtime": ("dynasor.core", "dynasor.certaindex", "dynasor.programs", "dynasor.datasets", "dynasor.client"),
    "dynasor.frontend": ("dynasor.core", "dynasor.certaindex", "dynasor.client", "dynasor.program_runtime.allocation"),
    "dynasor.modes": ("dynasor.core", "dynasor.certaindex", "dynasor.programs", "dynasor.program_runtime"),
    # the simulator: the scheduling core the server uses, the programs' rules, replay and datasets; no SGLang
    "dynasor.sim": ("dynasor.core", "dynasor.scheduler", "dynasor.certaindex", "dynasor.programs", "dynasor.program_runtime",
                    "dynasor.datasets", "dynasor.evaluation"),
    # measuring, not serving: statistics over plain data, and servers started for tests and benchmarks
    "dynasor.evaluation": ("dynasor.core", "dynasor.srt.cpu_defaults"),
    "dynasor.srt": ("dynasor.core", "dynasor.scheduler", "dynasor.kernels", "dynasor.modes.job",
                    "dynasor.modes.options", "dynasor.modes.outcome", "dynasor.modes.responses", "dynasor.model"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_point_one_way(layer):
    allowed = (layer, *LAYERS[layer])
    wrong = {f"{m} -> {t}" for m, targets in EDGES.items() if _within(m, (layer,))
             for t in targets if not _within(t, allowed) and t != "dynasor"}
    assert not wrong, f"{layer} may import only {allowed}: {sorted(wrong)}"


def test_the_core_holds_no_evaluation_statistics():
    core = {m for m in MODULES if _within(m, ("dynasor.core",))}
    assert not {m for m in core if any(word in m for word in ("bootstrap", "rate_curve", "paired_ratio", "slo"))}


def test_only_srt_touches_sglang_internals_and_the_core_stays_dependency_free():
    for module in MODULES:
        names = external(module)
        if not _within(module, ("dynasor.srt",)):
            assert not {n for n in names if n.startswith("sglang.srt")}, f"{module} imports SGLang internals"
        if _within(module, ("dynasor.sim",)):
            assert not {n for n in names if n.split(".")[0] in {"sglang", "torch", "httpx"}}, f"{module}: no engine"
        if _within(module, ("dynasor.core", "dynasor.scheduler")):
            heavy = {n for n in names if n.split(".")[0] in {"sglang", "torch", "httpx", "fastapi", "triton"}}
            assert not heavy, f"{module} must stay free of SGLang, torch and HTTP: {sorted(heavy)}"
