"""fseg: fashion instance segmentation (DeepFashion2 -> COCO, Mask R-CNN on TF 2 / Keras 3)."""
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent


# Optional C speed-up of the converter's mask areas (df2coco/_polygon_area.c). optional=True: where
# no C compiler is available the install still succeeds and df2coco uses pycocotools instead, with
# the same results (tests/test_polygon_area.py keeps the two equal). -ffp-contract=off keeps the
# multiply and add that pycocotools rounds separately from being fused (its results depend on it).
POLYGON_AREA = Extension(
    "df2coco._polygon_area",
    ["df2coco/_polygon_area.c"],
    extra_compile_args=[] if sys.platform == "win32" else ["-O2", "-ffp-contract=off"],
    optional=True,
)


def requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    reqs = [ln.split("#")[0].strip() for ln in lines]
    return [r for r in reqs if r and not r.startswith("pytest")]


setup(
    name="fseg",
    version="0.1.0",
    description="Fashion instance segmentation: DeepFashion2 to COCO, Mask R-CNN train/evaluate/predict",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["df2coco", "df2coco.*", "mrcnn", "mrcnn.*", "fseg", "fseg.*"])
    + ["fseg.configs"],
    # The repository's configs/ ships inside the package as fseg/configs/ (see fseg/paths.py).
    package_dir={"fseg.configs": "configs"},
    package_data={"fseg.configs": ["*.toml"]},
    ext_modules=[POLYGON_AREA],
    install_requires=requirements(),
    entry_points={"console_scripts": ["fseg = fseg.cli:main"]},
)
