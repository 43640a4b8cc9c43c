"""Shared test fixtures: reference paths, a cache of big generated files, models built once, process ids."""
from __future__ import annotations

import os
import subprocess
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


# A tiny model with the landmark head on DeepFashion2's 13 classes and 294 landmarks.
TINY_LANDMARK_CONFIG = """
NAME = "tinylandmarks"
NUM_CLASSES = 14
BACKBONE = "resnet18_half"
IMAGES_PER_GPU = 1
IMAGE_MIN_DIM = 128
IMAGE_MAX_DIM = 128
TOP_DOWN_PYRAMID_SIZE = 32
FPN_CLASSIF_FC_LAYERS_SIZE = 32
POST_NMS_ROIS_INFERENCE = 50
DETECTION_MAX_INSTANCES = 8
DETECTION_MIN_CONFIDENCE = 0.0
ROI_HEADS = ["mask", "landmarks"]
LANDMARK_POOL_SIZE = 7
LANDMARK_HEAD_CONV_LAYERS = 1
LANDMARK_HEAD_CONV_CHANNELS = 16
LANDMARK_HEATMAP_SIZE = 14
"""


def random_fashion_model(folder: Path, name: str, config_text: str, *fashion_keys: str) -> tuple[Path, Path]:
    """(config TOML, weights .h5) of a random-init model: ``config_text`` plus configs/deepfashion2.toml's
    CLASS_NAMES and ``fashion_keys``, written into ``folder`` as ``name``.toml / ``name``.h5."""
    import json

    from mrcnn.config import load_config
    from mrcnn.model import MaskRCNN

    fashion = load_config(REPO / "configs" / "deepfashion2.toml")
    config_path = folder / f"{name}.toml"
    config_path.write_text(config_text + "".join(f"{key} = {json.dumps(list(getattr(fashion, key)))}\n"
                                                 for key in ("CLASS_NAMES", *fashion_keys)))
    model = MaskRCNN(mode="inference", config=load_config(config_path), model_dir=str(folder / "logs"))
    model.save_weights(str(folder / f"{name}.h5"))
    return config_path, folder / f"{name}.h5"


@pytest.fixture(scope="session")
def small_model_files(tmp_path_factory):
    """(config TOML, weights .h5) of a small random-init fashion model, saved by MaskRCNN.save_weights.

    256-pixel images, the light backbone and 100 ROIs keep predict/evaluate tests fast; shared by every
    test module.
    """
    return random_fashion_model(tmp_path_factory.mktemp("small_model"), "small", SMALL_PREDICT_CONFIG)


@pytest.fixture(scope="session")
def tiny_landmark_model_files(tmp_path_factory):
    """(config TOML, weights .h5) of a tiny random-init model with the landmark head (128 px, 8 detections)."""
    return random_fashion_model(tmp_path_factory.mktemp("tiny_landmarks"), "tiny", TINY_LANDMARK_CONFIG,
                                "LANDMARK_COUNTS")


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


@pytest.fixture
def dead_and_live_pids():
    """A process id that has ended (reaped) and one of a running process."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    running = subprocess.Popen(["sleep", "60"])
    yield ended.pid, running.pid
    running.kill()
    running.wait()
