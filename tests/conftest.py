"""Shared test fixtures: paths to the reference material and a cache for big generated files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The project's reference material sits beside the repository (CI copies it there too).
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
# Big generated files (e.g. 257 MB of matterport-layout weights) are cached outside the repo.
CACHE = Path(os.environ.get("FSEG_TEST_CACHE", Path.home() / ".cache" / "fseg-tests"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference material not found at {REFERENCE} (shared/ must sit beside the repository)")
    return REFERENCE


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE


SMALL_PREDICT_CONFIG = """
NAME = "smallfashion"
NUM_CLASSES = 14
BACKBONE = "resnet50"
IMAGES_PER_GPU = 1
IMAGE_MIN_DIM = 256
IMAGE_MAX_DIM = 256
POST_NMS_ROIS_INFERENCE = 100
DETECTION_MAX_INSTANCES = 20
DETECTION_MIN_CONFIDENCE = 0.0
"""


@pytest.fixture(scope="session")
def small_model_files(tmp_path_factory):
    """(config TOML, weights .h5) of a small random-init fashion model, saved by MaskRCNN.save_weights.

    256-pixel images and 100 ROIs keep predict/evaluate tests fast; shared by every test module.
    """
    import json

    from mrcnn.config import load_config
    from mrcnn.model import MaskRCNN

    folder = tmp_path_factory.mktemp("small_model")
    config_path = folder / "small.toml"
    class_names = load_config(REPO / "configs" / "deepfashion2.toml").CLASS_NAMES
    config_path.write_text(SMALL_PREDICT_CONFIG + f"CLASS_NAMES = {json.dumps(class_names)}\n")
    model = MaskRCNN(mode="inference", config=load_config(config_path), model_dir=str(folder / "logs"))
    model.save_weights(str(folder / "small.h5"))
    return config_path, folder / "small.h5"
