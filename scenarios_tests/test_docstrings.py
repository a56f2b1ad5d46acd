"""Public functions and classes of the core rooms carry numpydoc docstrings (issue 11, point 5).

Every module of the rooms in ``DOCUMENTED_ROOMS`` is parsed (``ast``), not imported. Each public top-level
function (no leading underscore) and each public class must have a docstring; a function with parameters
(besides ``self``/``cls``) must have a ``Parameters`` section, and one that returns a value a ``Returns``
section (a generator: ``Yields``), as numpydoc underlined headings (``Parameters`` over ``----------``).
Public methods of public classes are checked the same way, and the names a Parameters section lists must be
the function's parameters, every one of them (so a renamed or added parameter cannot leave its docstring
behind).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scenarios_assets"

# The rooms whose public API is documented (every room of the core).
DOCUMENTED_ROOMS = (
    "core/models",
    "core/data",
    "core/engines",
    "core/families",
    "core/library",
)

# Public names not (yet) documented to the rule, each with why. Keys: "<module>.<name>" or
# "<module>.<Class>.<method>", the module dotted from scenarios_assets. Keep it short: a new public function is
# documented when it is written.
ALLOWLIST: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(path for room in DOCUMENTED_ROOMS for path in (PACKAGE / room).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _has_section(doc: str, title: str) -> bool:
    """A numpydoc heading: the title alone on a line, underlined by at least as many dashes."""
    return re.search(rf"^\s*{title}\s*\n\s*-{{{len(title)},}}\s*$", doc, re.MULTILINE) is not None


_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")


def _documented_parameters(doc: str) -> set[str] | None:
    """The names listed in the Parameters section (entries at the section's indentation), None without one."""
    lines = doc.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and re.fullmatch(r"\s*-{10,}\s*", lines[i + 1]):
            indent = len(line) - len(line.lstrip())
            names: set[str] = set()
            body = lines[i + 2:]
            for k, entry in enumerate(body):
                if k + 1 < len(body) and re.fullmatch(r"\s*-{3,}\s*", body[k + 1]):
                    break  # the next section's title
                if entry.strip() and len(entry) - len(entry.lstrip()) == indent:
                    match = _ENTRY.match(entry.strip())
                    if match is not None:
                        names.update(name.strip().lstrip("*") for name in match[1].split(","))
            return {name for name in names if name}
    return None


def _own_nodes(func: ast.FunctionDef | ast.AsyncFunctionDef):
    """The nodes of ``func``'s body, without those of the functions, lambdas and classes nested in it."""
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                stack.append(child)


def _returns_kind(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """"Yields" for a generator, "Returns" for a function returning a value, None otherwise."""
    nodes = list(_own_nodes(func))
    if any(isinstance(node, (ast.Yield, ast.YieldFrom)) for node in nodes):
        return "Yields"
    if isinstance(func.returns, ast.Constant) and func.returns.value is None:
        return None
    if func.returns is not None:
        return "Returns"
    if any(isinstance(node, ast.Return) and node.value is not None
           and not (isinstance(node.value, ast.Constant) and node.value.value is None) for node in nodes):
        return "Returns"
    return None


def _parameters(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = func.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def _is_property(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id in ("property", "cached_property") for d in func.decorator_list)


def _function_problems(name: str, func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    doc = ast.get_docstring(func)
    if not doc:
        return [f"{name}: no docstring"]
    problems = []
    if _is_property(func):
        return problems  # a property reads as an attribute: its docstring says what it is
    if _parameters(func) and not _has_section(doc, "Parameters"):
        problems.append(f"{name}: no Parameters section")
    documented = _documented_parameters(doc)
    if documented is not None and documented != set(_parameters(func)):
        missing, extra = sorted(set(_parameters(func)) - documented), sorted(documented - set(_parameters(func)))
        problems.append(f"{name}: Parameters section does not match the signature (missing {missing}, not "
                        f"parameters {extra})")
    kind = _returns_kind(func)
    if kind is not None and not _has_section(doc, kind):
        problems.append(f"{name}: no {kind} section")
    return problems


def _public(node_name: str) -> bool:
    return not node_name.startswith("_")


def _problems(path: Path) -> list[str]:
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
            problems += _function_problems(f"{module}.{node.name}", node)
        elif isinstance(node, ast.ClassDef) and _public(node.name):
            if not ast.get_docstring(node):
                problems.append(f"{module}.{node.name}: no docstring")
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(item.name):
                    problems += _function_problems(f"{module}.{node.name}.{item.name}", item)
    return problems


@pytest.mark.parametrize("path", _modules(), ids=_module_name)
def test_public_api_has_numpydoc_docstrings(path: Path) -> None:
    problems = [p for p in _problems(path) if p.split(":")[0] not in ALLOWLIST]
    assert not problems, "\n".join(problems)


def test_allowlist_names_exist_and_still_need_it() -> None:
    """An allowlisted name that is gone, or now documented, must leave the list."""
    found: set[str] = set()
    for path in _modules():
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(f"{module}.{node.name}")
            if isinstance(node, ast.ClassDef):
                found.update(f"{module}.{node.name}.{item.name}" for item in node.body
                             if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    missing = sorted(set(ALLOWLIST) - found)
    assert not missing, f"allowlisted names that no longer exist: {missing}"
    failing = {p.split(":")[0] for path in _modules() for p in _problems(path)}
    documented = sorted((set(ALLOWLIST) & found) - failing)
    assert not documented, f"allowlisted names that are documented now (remove them from ALLOWLIST): {documented}"


def test_room_list_covers_existing_folders() -> None:
    for room in DOCUMENTED_ROOMS:
        assert (PACKAGE / room).is_dir(), room
