"""The package dependency rules of docs/ARCHITECTURE.md, checked by parsing imports."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# package -> packages it must never import
FORBIDDEN = {
    "df2coco": {"tensorflow", "keras", "mrcnn", "fseg"},
    "mrcnn": {"fseg", "df2coco", "click"},
}
# mrcnn modules that hold pure math or I/O and must not import Keras layers or the model.
MRCNN_LOWER = {
    "config": {"tensorflow", "keras", "mrcnn"},
    "anchors": {"tensorflow", "keras"},
    "checkpoints": {"tensorflow", "keras"},
    "visualize": {"tensorflow", "keras"},
    "image_io": {"tensorflow", "keras"},
}


def imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(path: Path, forbidden: set[str]) -> list[str]:
    bad = []
    for name in imported_top_modules(path):
        for f in forbidden:
            if name == f or name.startswith(f + "."):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_packages_respect_dependency_direction():
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in (REPO / package).rglob("*.py"):
            bad += violations(path, forbidden)
    for module, forbidden in MRCNN_LOWER.items():
        path = REPO / "mrcnn" / f"{module}.py"
        if path.exists():
            bad += violations(path, forbidden - ({"mrcnn"} if module != "config" else set()))
    assert not bad, "\n".join(bad)


def test_nothing_outside_fseg_imports_fseg():
    bad = []
    for package in ("df2coco", "mrcnn", "scripts"):
        for path in (REPO / package).rglob("*.py"):
            bad += violations(path, {"fseg"})
    assert not bad, "\n".join(bad)


def test_converter_and_cli_start_without_tensorflow():
    code = (
        "import importlib, pkgutil, sys, df2coco, fseg.cli\n"
        "for m in pkgutil.walk_packages(df2coco.__path__, 'df2coco.'): importlib.import_module(m.name)\n"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_no_module_is_too_long():
    long_files = []
    for package in ("df2coco", "mrcnn", "fseg"):
        for path in (REPO / package).rglob("*.py"):
            n = len(path.read_text().splitlines())
            if n > 700:
                long_files.append(f"{path.relative_to(REPO)}: {n} lines")
    assert not long_files, "\n".join(long_files)
