"""fseg: fashion instance segmentation (DeepFashion2 -> COCO, Mask R-CNN on TF 2 / Keras 3)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


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
    install_requires=requirements(),
    entry_points={"console_scripts": ["fseg = fseg.cli:main"]},
)
