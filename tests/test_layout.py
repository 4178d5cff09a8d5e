"""The shape of the code: no import loops in pybridge, and one module that maps HTTP statuses.

These read the source, as a reviewer would: a loop between two modules, or a second place that
turns a status into an error, is how the same idea ends up coded twice.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pybridge"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set:
    """pybridge modules that ``path`` imports anywhere (module level or inside a function)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            module = node.module if node.level == 0 else ".".join(filter(None, [base, node.module]))
            if not (module or "").startswith("pybridge"):
                continue
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # submodules by name
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pybridge")}
    return found


def import_graph() -> dict:
    """Each module's imports of other pybridge modules. Its own packages are left out: Python
    runs them before the module (``from . import x`` in a package's module names the package,
    which is no new dependency)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: _imports(path, name) & set(paths) - {name} - _ancestors(name)
        for name, path in paths.items()
    }


def _ancestors(name: str) -> set:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def cycles(graph: dict) -> list:
    """Each loop once, as the list of modules along it."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_sees_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_pybridge_has_no_import_loops():
    graph = import_graph()
    assert "pybridge.hub_call" in graph["pybridge.hub"]  # the graph sees real imports
    assert "pybridge.hub" in graph["pybridge.tokenizer"]  # ... function-level ones too
    # A package imports its submodules' public names through __init__; that is not a loop.
    loops = [c for c in cycles(graph) if not any(m.endswith(("fixtures", "mirror")) for m in c)]
    assert loops == []


STATUS = re.compile(r"status_code|\bstatus\s*(==|in|!=)\s*[\d(]")


SERVERS = ("mirror", "serve")  # they send statuses; they do not read a Hub's


def test_only_hub_call_maps_http_statuses_to_errors():
    """Every client-side mapping of a status to an error is in one place, pybridge/hub_call.py."""
    readers = sorted(
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if STATUS.search(p.read_text()) and not set(SERVERS) & set(p.parts)
    )
    assert readers == ["pybridge/hub_call.py"]


C_SOURCE = ROOT / "rpackage" / "src"
C_DEFINITION = re.compile(r"^(?!static\b)[A-Za-z_][\w \t\*]*?\b(\w+)\s*\([^;{]*\)\s*\{", re.M)
C_CALL = re.compile(r"\b(\w+)\s*\(")
C_INCLUDE = re.compile(r'^#include\s+"([^"]+)"', re.M)
C_NOISE = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\])*"', re.S)  # comments, strings


def c_graph() -> dict:
    """Which .c file needs which: a file uses a function another defines (not static). init.c,
    which registers every entry point with R, is left out; it needs all and none needs it."""
    sources = {
        p.name: C_NOISE.sub("", p.read_text()) for p in C_SOURCE.glob("*.c") if p.name != "init.c"
    }
    owner = {name: f for f, text in sources.items() for name in C_DEFINITION.findall(text)}
    return {
        f: {owner[n] for n in C_CALL.findall(text) if owner.get(n, f) != f}
        for f, text in sources.items()
    }


def test_rpackage_src_has_no_dependency_loops_between_files_or_headers():
    graph = c_graph()
    assert "arrow_read.c" in graph["columns.c"]  # the graph sees real calls
    assert cycles(graph) == []
    headers = {p.name: set(C_INCLUDE.findall(p.read_text())) for p in C_SOURCE.glob("*.h")}
    assert cycles(headers) == []
