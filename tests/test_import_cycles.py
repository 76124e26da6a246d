"""No import cycle among grok_tui's modules, counting every import in a file.

import-linter's contracts (test_boundaries.py) say which way the arrows between strata go;
this test says there is no loop at all, also inside a stratum and also through imports
written in a function body (lazy imports, which hide a cycle from anyone reading the top of
a file). Every `import` statement anywhere in a module counts, under `if TYPE_CHECKING:` too:
a type-only back-reference is still an arrow the wrong way. An import names the most
specific module it reaches (`from a.b import c` reaches module a.b.c if there is one, else
a.b); the parent packages Python initialises on the way are not counted as arrows.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package directory."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def known_module(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of `modules` (None: from elsewhere)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def imports_of(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """The dotted names every import anywhere in `tree` reaches, relative ones resolved:
    `from a import b` reaches a.b when b is a module, else a."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield base if alias.name == "*" else f"{base}.{alias.name}"


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    files = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        names = imports_of(tree, module, path.name == "__init__.py")
        graph[module] = {m for m in (known_module(n, files) for n in names) if m is not None}
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a loop in them (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_grok_tui_has_no_import_cycle() -> None:
    graph = import_graph(ROOT / "grok_tui")
    assert "grok_tui.engine.core.ops" in graph  # the walk found the engine
    assert "grok_tui.engine.core.zp" in graph["grok_tui.engine.core.fourier"]
    assert cycles(graph) == []


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_a_cycle_behind_a_function_level_import_is_found(tmp_path: Path) -> None:
    package = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import helper\n",
            "pkg/b.py": "def helper():\n    from pkg import a\n    return a\n",
            "pkg/c.py": "import pkg.a\n",  # imports into the cycle, is not part of it
        },
    )
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.b"]]


def test_relative_and_type_checking_imports_count(tmp_path: Path) -> None:
    package = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from .x import X\n",  # the package imports its module
            "pkg/sub/x.py": "X = 1\n",
            "pkg/sub/y.py": "from ..z import Z\n",
            "pkg/z.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from .sub.y import Y\nZ = 1\n"
            ),
        },
    )
    graph = import_graph(package)
    assert graph["pkg.sub"] == {"pkg.sub.x"}
    assert graph["pkg.sub.x"] == set()  # the parent package is not an arrow
    assert cycles(graph) == [["pkg.sub.y", "pkg.z"]]


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("from pkg import a\n", "pkg.a"),  # a module of the package
        ("from pkg import VALUE\n", "pkg"),  # a name defined in the package
        ("import pkg.a as alias\n", "pkg.a"),
        ("from .a import f\n", "pkg.a"),
    ],
)
def test_an_import_names_the_most_specific_module(tmp_path: Path, text: str, target: str) -> None:
    package = write(tmp_path, {"pkg/__init__.py": "VALUE = 1\n", "pkg/a.py": "", "pkg/b.py": text})
    assert import_graph(package)["pkg.b"] == {target}
