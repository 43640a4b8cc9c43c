"""The import graph of a source tree, read with ``ast`` (nothing is imported), and the checks run on it.

``tests/test_architecture.py`` applies these to the repository and to small synthetic trees
(to show each check fails when it should).

A module's imports are split in two: those at module level (run when the module is
imported) and those inside functions (run when the function is called). Both count for
the layering rules and for cycles; only module-level ones count for "this module loads
without TensorFlow", because lazy imports are how a light module reaches heavy code.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Module:
    name: str
    path: Path
    top_level: set[str] = field(default_factory=set)  # imported modules (as written), module level
    lazy: set[str] = field(default_factory=set)  # imported inside functions or methods

    @property
    def imports(self) -> set[str]:
        return self.top_level | self.lazy


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """Absolute module name of a (possibly relative) ``from ... import``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def read_tree(root: Path, packages: list[str]) -> dict[str, Module]:
    """Every module of ``packages`` under ``root``, with the modules each imports.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module of the tree, else ``pkg``.
    """
    modules: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(root, path)
            modules[name] = Module(name, path)
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), filename=str(module.path))
        is_package = module.path.name == "__init__.py"
        _collect(tree, module, modules, is_package, lazy=False)
    return modules


def _collect(node, module: Module, modules: dict, is_package: bool, lazy: bool) -> None:
    for child in ast.iter_child_nodes(node):
        inner_lazy = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        target = module.lazy if lazy else module.top_level
        if isinstance(child, ast.Import):
            target.update(alias.name for alias in child.names)
        elif isinstance(child, ast.ImportFrom):
            base = _resolve(module.name, child, is_package)
            for alias in child.names:
                candidate = f"{base}.{alias.name}"
                target.add(candidate if candidate in modules else base)
        _collect(child, module, modules, is_package, inner_lazy)


def owner(name: str, parts: list[str], root: str | None = None) -> str | None:
    """The longest of ``parts`` that ``name`` is or lies inside (``mrcnn.ops.boxes`` -> ``mrcnn.ops``).

    The ``root`` package, when it is a part, owns its ``__init__`` only (``mrcnn``, not ``mrcnn.x``).
    """
    best = None
    for part in parts:
        inside = name == part or (part != root and name.startswith(part + "."))
        if inside and (best is None or len(part) > len(best)):
            best = part
    return best


def closure(relation: dict[str, set[str]]) -> dict[str, set[str]]:
    """Transitive closure of a relation given as {node: set of nodes}."""
    result = {k: set(v) for k, v in relation.items()}
    changed = True
    while changed:
        changed = False
        for key, reached in result.items():
            more = set().union(*(result.get(r, set()) for r in reached)) - reached
            if more:
                reached |= more
                changed = True
    return result


def layering_violations(modules: dict[str, Module], allowed: dict[str, set[str]], within: str) -> list[str]:
    """Imports between parts of ``within`` that its rules do not allow (the rules closed transitively).

    ``allowed``: {part: parts it may import}, parts being module or subpackage names.
    """
    parts = list(allowed)
    reachable = closure(allowed)
    bad = []
    for module in modules.values():
        source = owner(module.name, parts, within)
        if source is None or not (module.name == within or module.name.startswith(within + ".")):
            continue
        for imported in sorted(module.imports):
            if not (imported == within or imported.startswith(within + ".")):
                continue
            target = owner(imported, parts, within)
            if target is None:
                bad.append(f"{module.name} imports {imported}, which belongs to no declared part")
            elif target != source and target not in reachable[source]:
                bad.append(f"{module.name} ({source}) imports {imported} ({target})")
    return bad


def import_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Cycles among the tree's modules (every import counts), each as a list of module names."""
    graph = {name: {i for i in m.imports if i in modules and i != name} for name, m in modules.items()}
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def loaded_at_import(modules: dict[str, Module], start: str) -> set[str]:
    """Every module name (of the tree or outside it) that importing ``start`` runs, via module-level imports.

    Importing ``a.b.c`` also runs ``a`` and ``a.b`` (their ``__init__``).
    """
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        pieces = name.split(".")
        for i in range(1, len(pieces) + 1):
            prefix = ".".join(pieces[:i])
            if prefix in seen:
                continue
            seen.add(prefix)
            if prefix in modules:
                todo.extend(modules[prefix].top_level)
    return seen


def heavy_imports(modules: dict[str, Module], start: str, heavy: set[str]) -> list[str]:
    """Import chains from ``start`` to a module of ``heavy`` (e.g. tensorflow) through module-level imports."""
    chains = []
    parents: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        name = todo.pop(0)
        pieces = name.split(".")
        following = set()
        for i in range(1, len(pieces) + 1):
            prefix = ".".join(pieces[:i])
            if prefix in modules:
                following |= modules[prefix].top_level
        for nxt in sorted(following):
            if nxt in parents:
                continue
            parents[nxt] = name
            if nxt.split(".")[0] in heavy:
                chain, node = [nxt], name
                while node is not None:
                    chain.append(node)
                    node = parents[node]
                chains.append(" -> ".join(reversed(chain)))
            else:
                todo.append(nxt)
    return chains
