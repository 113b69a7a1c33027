"""The house's layers (DESIGN.md): no import circle among the project's modules, and the library
at the ground (gnsim imports nothing of simulators, training or viz)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gnsim", "simulators", "training", "viz")


def imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at the top or inside a function."""
    graph = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:  # `from pkg import submodule` imports the submodule
                    found |= {f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module
                              for a in node.names}
                elif isinstance(node, ast.Import):
                    found |= {a.name for a in node.names}
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES}
    return graph


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_no_module_imports_itself_round_a_circle():
    graph = imports()
    circles = []
    for start in graph:
        stack = [(start, (start,))]
        while stack:
            module, path = stack.pop()
            for nxt in graph.get(module, ()):
                if nxt == start:
                    circles.append(" -> ".join((*path, nxt)))
                elif nxt not in path and nxt in graph:
                    stack.append((nxt, (*path, nxt)))
    assert circles == []


def test_the_library_imports_nothing_above_it():
    upward = {m: sorted(d for d in deps if not d.startswith("gnsim"))
              for m, deps in imports().items() if m.startswith("gnsim")}
    assert {m: d for m, d in upward.items() if d} == {}
