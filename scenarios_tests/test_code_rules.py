"""Rules of the code base that review alone does not keep (docs/architecture.md, "What may import what"):
the pure core imports no Dagster and nothing of the layers above it, the Dagster layer nothing of the command
line or the API, no module-level import cycles, no new deferred cycle, and no function over 80 lines.

Every module of ``scenarios_assets`` is parsed (``ast``), not imported: imports inside functions count too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scenarios_assets"
MAX_FUNCTION_LINES = 80

# Functions over the limit, each with why it is still there (none today: keep it so).
LONG_FUNCTIONS: dict[str, str] = {
}

# What each layer may not import (at any level: module top or inside a function).
UPPER_LAYERS = ("scenarios_assets.defs", "scenarios_assets.definitions", "scenarios_assets.service",
                "scenarios_assets.cli", "scenarios_assets.api", "scenarios_assets.__main__")
FORBIDDEN = {
    "scenarios_assets.core": ("dagster", "dagster_dask", "dagster_postgres", "dagster_webserver", "fastapi",
                              "uvicorn", *UPPER_LAYERS),
    "scenarios_assets.defs": tuple(layer for layer in UPPER_LAYERS if layer != "scenarios_assets.defs"),
    # The generation service is shared by the command line and the API: it imports neither.
    "scenarios_assets.service": ("scenarios_assets.cli", "scenarios_assets.api", "scenarios_assets.__main__"),
    # The command line and the API are two front ends of the service: neither imports the other.
    "scenarios_assets.api": ("scenarios_assets.cli", "scenarios_assets.__main__"),
    "scenarios_assets.cli": ("scenarios_assets.api",),
}

# The rooms of the core, bottom to top (docs/architecture.md): each may import its own room and those listed.
CORE_ROOMS = {
    "scenarios_assets.core.models": (),
    "scenarios_assets.core.data": ("scenarios_assets.core.models",),
    "scenarios_assets.core.engines": ("scenarios_assets.core.models", "scenarios_assets.core.data",
                                      "scenarios_assets.reference"),
    "scenarios_assets.core.families": ("scenarios_assets.core.models", "scenarios_assets.core.data",
                                       "scenarios_assets.core.engines", "scenarios_assets.reference"),
    "scenarios_assets.core.library": ("scenarios_assets.core.models", "scenarios_assets.core.data",
                                      "scenarios_assets.core.engines", "scenarios_assets.core.families"),
}
# Modules of the families room that are not families: the registry imports the family modules, and every
# family module may import the context. No family module imports another.
FAMILY_INFRASTRUCTURE = ("scenarios_assets.core.families.registry", "scenarios_assets.core.families.context",
                         "scenarios_assets.core.families.stochastic")


# Import cycles closed by an import inside a function (the module-level graph has none). A new one fails here,
# and one that is gone must be removed from this list.
KNOWN_DEFERRED_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement of module ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in MODULES else base, id(node) in top))
    return found


def graph(module_level_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        for target, at_top in imports(name):
            if target in MODULES and target != name and (at_top or not module_level_only):
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return found


def test_layers_import_only_what_is_below_them():
    broken = []
    for name in MODULES:
        for layer, forbidden in FORBIDDEN.items():
            if name == layer or name.startswith(layer + "."):
                for target, at_top in imports(name):
                    if any(target == f or target.startswith(f + ".") for f in forbidden):
                        broken.append(f"{name} imports {target}" + ("" if at_top else " (inside a function)"))
    assert not broken, "\n".join(broken)


def _reachable(start: str) -> set[str]:
    """The modules of the package ``start`` imports, directly or through others (imports inside functions too)."""
    edges = graph(module_level_only=False)
    seen, todo = set(), [m for m in MODULES if m == start or m.startswith(start + ".")]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


def test_the_api_and_the_cli_do_not_import_each_other():
    """The API builds its plans through the service (scenarios_assets.service), not the CLI's parser: not
    even through another module. ``scenarios serve`` is named by a string (cli.main.SUBCOMMANDS), imported
    only when it is asked for."""
    api = _reachable("scenarios_assets.api")
    cli = _reachable("scenarios_assets.cli")
    assert "scenarios_assets.service.plan" in api and "scenarios_assets.service.plan" in cli
    assert not [m for m in api if m == "scenarios_assets.cli" or m.startswith("scenarios_assets.cli.")]
    assert not [m for m in cli if m == "scenarios_assets.api" or m.startswith("scenarios_assets.api.")]


def test_the_rules_see_a_forbidden_import(tmp_path):
    """The walker itself: a dagster import inside a core function is found (guards the test above)."""
    source = "def f():\n    from dagster import asset\n    return asset\n"
    tree = ast.parse(source)
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert found == ["dagster"]
    assert "scenarios_assets.core.data.market" in MODULES and "scenarios_assets.defs.keys" in MODULES
    assert ("scenarios_assets.core.models.errors", True) in imports("scenarios_assets.core.data.market")


def _room(module: str) -> str | None:
    return next((room for room in CORE_ROOMS if module == room or module.startswith(room + ".")), None)


def test_core_rooms_import_only_the_rooms_below_them():
    broken = []
    for name in MODULES:
        room = _room(name)
        if room is None:
            continue
        for target, _ in imports(name):
            if not target.startswith("scenarios_assets.") or target in ("scenarios_assets.core", room):
                continue
            target_room = _room(target) or target.rsplit(".", 1)[0] if target.startswith("scenarios_assets.core") else target
            allowed = (room, *CORE_ROOMS[room])
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                broken.append(f"{name} imports {target} ({target_room})")
    assert not broken, "\n".join(broken)


def test_no_family_module_imports_another():
    families = [m for m in MODULES if _room(m) == "scenarios_assets.core.families" and m not in FAMILY_INFRASTRUCTURE
                and m != "scenarios_assets.core.families"]
    broken = [f"{name} imports {target}" for name in families for target, _ in imports(name)
              if target in families and target != name]
    assert len(families) >= 5 and not broken, broken


def test_no_module_level_import_cycles():
    assert cycles(graph(module_level_only=True)) == []


def test_deferred_import_cycles_are_only_the_known_ones():
    found = set(cycles(graph(module_level_only=False)))
    assert found <= KNOWN_DEFERRED_CYCLES, f"new import cycle(s): {[sorted(c) for c in found - KNOWN_DEFERRED_CYCLES]}"
    assert found == KNOWN_DEFERRED_CYCLES, f"gone, remove from the list: {[sorted(c) for c in KNOWN_DEFERRED_CYCLES - found]}"


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of ``node``'s docstring (0 without one)."""
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def long_functions() -> dict[str, int]:
    found = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # the def line to the last line of the body
                lines -= _docstring_lines(node)  # the code's length: a numpydoc docstring is not code to read
                if lines > MAX_FUNCTION_LINES:
                    found[f"{name.removeprefix('scenarios_assets.')}.{node.name}"] = lines
    return found


def test_no_function_over_80_lines_of_code():
    found = long_functions()
    assert set(found) <= set(LONG_FUNCTIONS), {k: v for k, v in found.items() if k not in LONG_FUNCTIONS}
    assert set(found) == set(LONG_FUNCTIONS), f"now short, remove: {sorted(set(LONG_FUNCTIONS) - set(found))}"


def test_no_private_name_is_imported_from_another_module():
    """A leading underscore means "this module's own": another module of the package that needs it gets a public
    name (e.g. ``models.scenario.jsonable``, ``engines.calibration.years_offset``)."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scenarios_assets"):
                found += [f"{name} imports {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found


def test_family_traits_come_from_the_registry():
    """The family list is the registry's: every per-family set check is named by a FamilySpec and every name a
    spec gives is a registered check; the footprint estimate and the tail statistics read the specs (regime,
    a replay family, counts in the footprint: a hand-written list once spelled it 'regimes' and left it out)."""
    from scenarios_assets.core.families.registry import FAMILY_SPECS
    from scenarios_assets.core.library import footprint
    from scenarios_assets.core.library.validation import SET_CHECKS, SetStats, checks_for
    from scenarios_assets.core.models.config import default_config

    per_family = {c.name for c in SET_CHECKS if c.per_family}
    named = {name for spec in FAMILY_SPECS.values() for name in spec.set_checks}
    assert named == per_family
    assert [c.name for c in checks_for("regime")][-1] == "regime_types_found"
    assert "statistical_validity" not in {c.name for c in checks_for("historical")}
    assert [f for f, spec in FAMILY_SPECS.items() if spec.simulated] == ["monte_carlo", "bootstrap"]
    assert SetStats("bootstrap", "severe").simulated and not SetStats("stress", "severe").simulated
    sizes = footprint.Sizes(sessions=1000, symbols=10, universe={}, rows=None)
    for family in FAMILY_SPECS:
        est = footprint.estimate(default_config(), [family], ["severe"], sizes, save_timeseries=True)
        assert est.disk > 0 and any(k.startswith(family) for k in est.disk_parts), family


def test_every_folder_of_the_package_is_a_regular_package():
    """A folder without __init__.py is a namespace package: it imports, but `python -m`, hatch and mypy treat it
    differently from its siblings (scenarios_assets/cli once was one)."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").exists()) == []
