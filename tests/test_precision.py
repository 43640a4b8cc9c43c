"""Inference precision (mrcnn.modeling.precision): the hardware checks, bf16/fp16 models with float32
outputs, the Keras policy left as it was, and the CLI's one-line refusals.

The hardware is faked where a test needs it (``cpu_bf16_flags`` / ``gpu_capabilities``), so every
test runs on any CPU: a CPU without bfloat16 instructions computes the same values, only slower.
"""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from mrcnn.modeling import precision as precision_module
from mrcnn.modeling.precision import PrecisionError, check_precision, cpu_bf16_flags

TINY = dict(NAME="tiny", NUM_CLASSES=4, BACKBONE="resnet18_half", IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
            TOP_DOWN_PYRAMID_SIZE=32, FPN_CLASSIF_FC_LAYERS_SIZE=64, POST_NMS_ROIS_INFERENCE=50,
            DETECTION_MAX_INSTANCES=10, DETECTION_MIN_CONFIDENCE=0.0, IMAGES_PER_GPU=1, GPU_COUNT=1)


def fake_hardware(monkeypatch, cpu_flags=(), gpus=()):
    monkeypatch.setattr(precision_module, "cpu_bf16_flags", lambda *a: list(cpu_flags))
    monkeypatch.setattr(precision_module, "gpu_capabilities", lambda: list(gpus))


# ------------------------------------------------------------------ checks
def test_float32_is_always_allowed_and_unknown_names_are_refused(monkeypatch):
    fake_hardware(monkeypatch)
    check_precision("float32")
    with pytest.raises(PrecisionError, match="unknown precision 'half'"):
        check_precision("half")


@pytest.mark.parametrize("cpu_flags, gpus, precision, allowed", [
    ((), (), "bf16", False),
    (("avx512_bf16",), (), "bf16", True),
    (("amx_bf16",), (), "bf16", True),
    ((), ((8, 0),), "bf16", True),
    ((), ((7, 5),), "bf16", False),
    ((), (), "fp16", False),
    (("amx_bf16",), (), "fp16", False),  # bfloat16 CPUs still emulate float16
    ((), ((7, 0),), "fp16", True),
    ((), ((6, 1),), "fp16", False),
])
def test_reduced_precision_needs_native_hardware(monkeypatch, cpu_flags, gpus, precision, allowed):
    fake_hardware(monkeypatch, cpu_flags, gpus)
    if allowed:
        check_precision(precision)
        return
    with pytest.raises(PrecisionError) as error:
        check_precision(precision)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{precision} needs") and "--" not in message
    assert ("compute capability" in message) if gpus else ("no GPU is visible" in message)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_flags(cpuinfo) == ["amx_bf16", "avx512_bf16"]
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_bf16_flags(cpuinfo) == []
    assert cpu_bf16_flags(tmp_path / "missing") == []


# ------------------------------------------------------------------ models
@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from mrcnn.config import config_from_dict
    from mrcnn.model import MaskRCNN

    path = tmp_path_factory.mktemp("precision") / "tiny.h5"
    MaskRCNN("inference", config_from_dict(TINY, source="test"), str(path.parent)).save_weights(str(path))
    return path


def build(precision, weights):
    from mrcnn.config import config_from_dict
    from mrcnn.model import MaskRCNN

    model = MaskRCNN("inference", config_from_dict(TINY, source="test"), "unused", precision=precision)
    model.load_weights(str(weights), by_name=True)
    return model


@pytest.mark.parametrize("precision, compute", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_reduced_precision_model_computes_its_trunk_in_it_and_returns_float32(monkeypatch, tiny_weights,
                                                                              precision, compute):
    import keras

    fake_hardware(monkeypatch, cpu_flags=("amx_bf16",), gpus=((8, 0),))
    model = build(precision, tiny_weights)
    assert keras.config.dtype_policy().name == "float32"  # the build left the global policy as it was
    layers = {layer.name: layer for layer in model.keras_model.layers}
    assert layers["conv1"].compute_dtype == compute and layers["conv1"].variable_dtype == "float32"
    assert layers["fpn_p2"].compute_dtype == compute
    for name in ("mrcnn_class_logits", "mrcnn_class", "mrcnn_bbox_fc", "mrcnn_mask", "mrcnn_detection",
                 "ROI", "roi_align_classifier"):
        assert layers[name].compute_dtype == "float32", name

    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    molded, metas, _ = model.mold_inputs([image])
    outputs = model.run_network(molded, metas)
    assert all(value.dtype in (np.float32, np.int32) for value in outputs.values())
    result = model.detect([image])[0]
    assert result["masks"].shape[:2] == (100, 120) and result["scores"].dtype == np.float32


def test_bf16_feature_maps_stay_close_to_float32(monkeypatch, tiny_weights):
    """Same weights, same image: bfloat16's 8-bit mantissa moves the pyramid's features by a few percent."""
    import keras

    fake_hardware(monkeypatch, cpu_flags=("amx_bf16",))
    image = np.random.default_rng(1).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    features = {}
    for precision in ("float32", "bf16"):
        model = build(precision, tiny_weights)
        molded, metas, _ = model.mold_inputs([image])
        p2 = keras.Model(model.keras_model.inputs, model.keras_model.get_layer("fpn_p2").output)
        anchors = model.get_anchors(molded.shape[1:3])[None]
        features[precision] = np.asarray(p2([molded, metas, anchors]), np.float32)
    reference, reduced = features["float32"], features["bf16"]
    relative = np.abs(reduced - reference).mean() / np.abs(reference).mean()
    assert 0 < relative < 0.05  # not identical (bf16 really ran), not far off


def test_training_models_refuse_a_precision():
    from mrcnn.config import config_from_dict
    from mrcnn.model import MaskRCNN

    with pytest.raises(ValueError, match="set_global_policy"):
        MaskRCNN("training", config_from_dict(TINY, source="test"), "unused", precision="bf16")


# ------------------------------------------------------------------ CLI
def test_predict_refuses_a_precision_this_machine_would_emulate(monkeypatch, tmp_path, small_model_files):
    from fseg.cli import cli

    fake_hardware(monkeypatch)
    config_path, weights = small_model_files
    result = CliRunner().invoke(cli, ["predict", "test_img/", "--out", str(tmp_path / "out"), "--config",
                                      str(config_path), "--weights", str(weights), "--precision", "fp16"])
    assert result.exit_code == 2, result.output
    assert "--precision fp16 needs a GPU" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_precision_with_results(tmp_path):
    from fseg.cli import cli

    results = tmp_path / "results.json"
    results.write_text("[]")
    annotations = tmp_path / "gt.json"
    annotations.write_text('{"images": [], "annotations": [], "categories": []}')
    result = CliRunner().invoke(cli, ["evaluate", "--annotations", str(annotations), "--results", str(results),
                                      "--precision", "bf16"])
    assert result.exit_code == 2 and "--precision cannot be used" in result.output, result.output
