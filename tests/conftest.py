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


# The command tests need a real model, not matterport's size: the light backbone and narrow heads
# build and trace in a fraction of resnet50's time (tests of matterport's layout use resnet50).
SMALL_PREDICT_CONFIG = """
NAME = "smallfashion"
NUM_CLASSES = 14
BACKBONE = "resnet18_half"
TOP_DOWN_PYRAMID_SIZE = 64
FPN_CLASSIF_FC_LAYERS_SIZE = 128
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

    256-pixel images, the light backbone and 100 ROIs keep predict/evaluate tests fast; shared by every
    test module.
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


@pytest.fixture
def reuse_built_models(monkeypatch):
    """``fseg.runtime.load_model`` built once per (config, weights file, mode) for the whole session.

    For tests of a command's behaviour around the model (outputs, faults, signals): they run the
    command several times with the same model, and building and tracing it is most of their cost.
    A weights file that changed on disk (another size or time) is loaded afresh, so damaged files
    still go through the real loader; tests of loading itself do not use this fixture.
    """
    from fseg import runtime

    real_load_model = runtime.load_model

    def load_model(config, weights_path, mode="inference", *, exclude=(), precision=None, **model_options):
        if mode != "inference" or model_options or weights_path is None:
            return real_load_model(config, weights_path, mode, exclude=exclude, precision=precision,
                                   **model_options)
        stat = Path(weights_path).stat()
        key = (repr(sorted(config.to_dict().items())), str(weights_path), stat.st_size, stat.st_mtime_ns,
               tuple(exclude), precision)
        if key not in _BUILT_MODELS:
            _BUILT_MODELS[key] = real_load_model(config, weights_path, mode, exclude=exclude, precision=precision)
        return _BUILT_MODELS[key]

    monkeypatch.setattr(runtime, "load_model", load_model)


_BUILT_MODELS: dict = {}
