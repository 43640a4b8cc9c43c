"""The dependency rules of docs/ARCHITECTURE.md, checked on the import graph (tests/import_graph.py).

Each rule is also run on a small synthetic tree that breaks it, so a check that could never fail
would show up here.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import import_graph as ig
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["df2coco", "mrcnn", "fseg", "scripts"]
HEAVY = {"tensorflow", "keras"}
MAX_LINES = 420  # "files stay under about 400 lines"

# The levels of mrcnn: part -> parts it may import (closed transitively by the checker).
MRCNN_LEVELS = {
    "mrcnn.ops": set(),
    "mrcnn.registry": set(),
    "mrcnn.io": {"mrcnn.registry"},
    "mrcnn.config_rules": {"mrcnn.registry"},
    "mrcnn.config": {"mrcnn.config_rules", "mrcnn.ops", "mrcnn.io"},
    "mrcnn.layers": {"mrcnn.ops"},
    "mrcnn.modeling": {"mrcnn.layers", "mrcnn.registry"},
    "mrcnn.data": {"mrcnn.ops", "mrcnn.io"},
    "mrcnn.eval": {"mrcnn.io"},
    "mrcnn.train": {"mrcnn.modeling", "mrcnn.data", "mrcnn.config"},
    "mrcnn.model_functions": {"mrcnn.data", "mrcnn.ops"},
    "mrcnn.model": {"mrcnn.train", "mrcnn.eval", "mrcnn.model_functions"},
    "mrcnn.utils": {"mrcnn.model"},
    "mrcnn.visualize": {"mrcnn.utils"},
    "mrcnn.export": {"mrcnn.model"},  # level 5: exported SavedModels, built from the whole model
    "mrcnn": set(),  # the package __init__: a docstring
}
# The CLI: thin commands over fseg.runtime; no command imports another (fseg.cli registers them all).
FSEG_PARTS = {
    "fseg.cli_util": set(), "fseg.runtime": {"fseg.cli_util"}, "fseg": set(), "fseg.__main__": {"fseg.cli"},
    "fseg.predict_output": {"fseg.cli_util"},
    "fseg.cli": {"fseg", "fseg.cli_util", *(f"fseg.{p.stem}" for p in (REPO / "fseg").glob("cmd_*.py"))},
    **{f"fseg.{p.stem}": {"fseg.runtime", "fseg.cli_util", "fseg.predict_output"}
       for p in (REPO / "fseg").glob("cmd_*.py")},
}
# Modules that must load without TensorFlow or Keras (module-level imports, followed transitively).
LIGHT = ["mrcnn", "mrcnn.config", "mrcnn.registry", "mrcnn.data", "mrcnn.data.dataset", "mrcnn.data.coco",
         "mrcnn.ops.anchors", "mrcnn.ops.box_frames", "mrcnn.ops.image_meta", "mrcnn.ops.masks",
         "mrcnn.ops.resize", "mrcnn.ops.unmold", "mrcnn.train", "mrcnn.train.checkpoints", "mrcnn.export.saved_model",
         "fseg.cli", "fseg.runtime"]
LIGHT_PACKAGES = ["df2coco", "mrcnn.io", "mrcnn.eval"]  # every module of these


@pytest.fixture(scope="module")
def tree():
    return ig.read_tree(REPO, PACKAGES)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


# ---------------------------------------------------------------- the repository
def test_mrcnn_levels(tree):
    assert not ig.layering_violations(tree, MRCNN_LEVELS, "mrcnn"), "\n".join(
        ig.layering_violations(tree, MRCNN_LEVELS, "mrcnn"))


def test_every_mrcnn_module_belongs_to_a_level(tree):
    loose = [name for name in tree
             if name.startswith("mrcnn") and ig.owner(name, list(MRCNN_LEVELS), "mrcnn") is None]
    assert not loose, loose


def test_the_cli_is_thin_commands_over_the_runtime(tree):
    bad = ig.layering_violations(tree, FSEG_PARTS, "fseg")
    assert not bad, "\n".join(bad)


def test_packages_respect_the_dependency_direction(tree):
    bad = []
    for module in tree.values():
        package = module.name.split(".")[0]
        for imported in module.imports:
            top = imported.split(".")[0]
            if package in ("df2coco", "mrcnn", "scripts") and top == "fseg":
                bad.append(f"{module.name} imports {imported} (nothing outside fseg imports fseg)")
            if package == "df2coco" and (top == "mrcnn" or top in HEAVY):
                bad.append(f"{module.name} imports {imported} (df2coco is standalone and TensorFlow-free)")
            if package == "mrcnn" and top in ("df2coco", "click"):
                bad.append(f"{module.name} imports {imported} (mrcnn knows no converter and no CLI)")
            if module.name.startswith("mrcnn.ops") and top == "keras":
                bad.append(f"{module.name} imports {imported} (ops are functions, not Keras layers)")
    assert not bad, "\n".join(bad)


def test_no_import_cycles(tree):
    assert ig.import_cycles(tree) == []


def test_light_modules_load_without_tensorflow(tree):
    names = LIGHT + [n for n in tree if any(n == p or n.startswith(p + ".") for p in LIGHT_PACKAGES)]
    chains = [chain for name in names for chain in ig.heavy_imports(tree, name, HEAVY)]
    assert not chains, "\n".join(chains)


def test_the_converter_and_the_cli_start_without_tensorflow():
    """The same rule, by really importing them in a fresh interpreter."""
    code = (
        "import importlib, pkgutil, sys, df2coco, fseg.cli, mrcnn.config, mrcnn.data, mrcnn.eval.coco_eval\n"
        "for m in pkgutil.walk_packages(df2coco.__path__, 'df2coco.'): importlib.import_module(m.name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_is_too_long(tree):
    long_files = [f"{m.path.relative_to(REPO)}: {n} lines" for m in tree.values()
                  if not m.name.startswith("scripts") and (n := len(m.path.read_text().splitlines())) > MAX_LINES]
    assert not long_files, "\n".join(long_files)


# ---------------------------------------------------------------- the checks themselves, on synthetic trees
LEVELS = {"pkg.ops": set(), "pkg.layers": {"pkg.ops"}, "pkg.modeling": {"pkg.layers"}, "pkg": set()}


def test_a_forbidden_import_is_reported(tmp_path):
    root = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/ops/__init__.py": "",
        "pkg/ops/boxes.py": "import numpy\n",
        "pkg/ops/bad.py": "def f():\n    from pkg.modeling.graph import build\n",  # upward, even lazily
        "pkg/layers/__init__.py": "",
        "pkg/layers/proposals.py": "from pkg.ops.boxes import x\n",
        "pkg/modeling/__init__.py": "",
        "pkg/modeling/graph.py": "from pkg.ops import boxes\nfrom ..layers import proposals\n",  # down 2 levels: ok
    })
    bad = ig.layering_violations(ig.read_tree(root, ["pkg"]), LEVELS, "pkg")
    assert bad == ["pkg.ops.bad (pkg.ops) imports pkg.modeling.graph (pkg.modeling)"]


def test_a_module_of_no_level_is_reported(tmp_path):
    root = write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/ops/__init__.py": "from pkg.extra import y\n",
                                 "pkg/extra.py": ""})
    bad = ig.layering_violations(ig.read_tree(root, ["pkg"]), LEVELS, "pkg")
    assert bad == ["pkg.ops imports pkg.extra, which belongs to no declared part"]


def test_a_cycle_through_a_lazy_import_is_reported(tmp_path):
    root = write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n",
                                 "pkg/b.py": "def f():\n    import pkg.a\n"})
    assert ig.import_cycles(ig.read_tree(root, ["pkg"])) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_tensorflow_reached_through_another_module_is_reported(tmp_path):
    root = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/anchors.py": "import numpy\nfrom pkg.boxes import norm\n",   # looks light...
        "pkg/boxes.py": "import tensorflow as tf\n",                      # ...but is not
        "pkg/lazy.py": "def f():\n    import tensorflow\n",               # lazy: light
    })
    tree = ig.read_tree(root, ["pkg"])
    assert ig.heavy_imports(tree, "pkg.anchors", HEAVY) == ["pkg.anchors -> pkg.boxes -> tensorflow"]
    assert ig.heavy_imports(tree, "pkg.lazy", HEAVY) == []
