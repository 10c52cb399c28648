"""Architecture checks (#23): no module-level import cycle among the project's modules, no
import inside a function without a comment saying why (a cycle, or the app registry), and
``personas`` importing none of the apps that depend on it (customers, imports, flows).

    python scripts/check_imports.py      # exits 1 and lists what is wrong
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("config", "personas", "customers", "imports", "flows")


def modules() -> dict[str, Path]:
    out = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def resolve(name: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def targets(mod: str, node: ast.AST, is_package: bool, known: dict[str, Path]) -> set[str]:
    found = set()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = resolve(mod, node, is_package)
        names = [base] + [f"{base}.{a.name}" for a in node.names]
    else:
        return found
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != mod:
            found.add(name)
    return found


def _has_reason(lines: list[str], node: ast.AST) -> bool:
    """A comment on the import, or heading the block of imports it stands in."""
    if any("#" in line for line in lines[node.lineno - 1 : node.end_lineno]):
        return True
    i = node.lineno - 2
    while i >= 0:
        text = lines[i].strip()
        if text.startswith("#"):
            return True
        if not (text == "" or text.startswith(("from ", "import ", ")")) or text.endswith(",")):
            return False
        i -= 1
    return False


def main() -> int:
    known = modules()
    graph: dict[str, set[str]] = {}
    problems = []
    for mod, path in known.items():
        tree = ast.parse(path.read_text())
        lines = path.read_text().splitlines()
        is_package = path.name == "__init__.py"
        graph[mod] = set()
        for node in tree.body:
            if isinstance(node, ast.If):  # TYPE_CHECKING blocks do not run
                continue
            graph[mod] |= targets(mod, node, is_package, known)
        if mod.split(".")[0] == "personas":  # the core imports no other app (any level)
            for node in ast.walk(tree):
                for dep in targets(mod, node, is_package, known):
                    if dep.split(".")[0] in ("customers", "imports", "flows"):
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        problems.append(f"{where}: personas imports {dep}")
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    if not _has_reason(lines, node):
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        problems.append(f"{where}: import inside a function without a reason")
    # Cycles: a depth-first search over module-level imports.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                # A package importing its own submodules (re-exports) is not a cycle.
                if not all(c.startswith(cycle[0] + ".") or c == cycle[0] for c in cycle):
                    problems.append("import cycle: " + " → ".join(cycle))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
