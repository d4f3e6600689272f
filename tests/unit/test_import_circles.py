"""No import circle between the modules of src/leanbench.

Every ``import`` / ``from ... import`` counts, at module level or inside a function; a target is resolved
to the nearest module file (``a.b.c`` -> ``a.b`` when ``c`` is a name, not a module); a package's
``__init__`` is never a target. A circle is a strongly connected component of more than one module.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under src/leanbench (a package by its __init__)."""
    mods = {}
    for f in sorted((src / "leanbench").rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.AST, base: str) -> list[str]:
    """Dotted names an import statement may load (`base`: the package relative imports start from)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            b = base
            for _ in range(node.level - 1):
                b = b.rpartition(".")[0]
            mod = f"{b}.{node.module}" if node.module else b
        else:
            mod = node.module or ""
        return [mod] + [f"{mod}.{a.name}" for a in node.names]
    return []


def import_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the modules of src/leanbench it imports (no self-edges, no __init__ targets)."""
    mods = _modules(src)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        base = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), filename=str(f))):
            for target in _imported(node, base):
                if not target.startswith("leanbench"):
                    continue
                r = _resolve(target, mods)
                if r and r != m and mods[r].name != "__init__.py":
                    graph[m].add(r)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def test_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set(), "g": {"g"}}
    assert circles(graph) == [["a", "b", "c"], ["d", "e"]]


def test_relative_and_function_level_imports_count(tmp_path):
    pkg = tmp_path / "leanbench"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from .b import thing\n")
    (pkg / "sub" / "b.py").write_text("import leanbench.sub.a\nthing = 1\n")
    (pkg / "c.py").write_text("from leanbench.sub import a\nfrom leanbench import sub\n")
    graph = import_graph(tmp_path)
    assert graph["leanbench.sub.a"] == {"leanbench.sub.b"}
    assert graph["leanbench.c"] == {"leanbench.sub.a"}  # the package __init__ is no target
    assert circles(graph) == [["leanbench.sub.a", "leanbench.sub.b"]]


def test_no_import_circle_in_src():
    found = circles(import_graph(SRC))
    report = "\n".join("circle: " + " <-> ".join(c) for c in found)
    print(report)
    assert not found, f"{len(found)} import circle(s) in src/leanbench:\n{report}"
