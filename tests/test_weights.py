"""Tests of mrcnn.io.weights (matterport .h5 files) and `fseg weights inspect`.

Files are built here from the layout JSONs in shared/reference/matterport_h5/
(every layer of matterport's models, in file order, with weight names and shapes)
and seeded random values. Expected facts (233 weighted layers, 690 arrays,
64,158,584 parameters for resnet101/81 classes; 131 layers and 45,088,120 for
resnet50) come from shared/reference/matterport.md, i.e. matterport's published
model summaries, not from this code.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from click.testing import CliRunner

from mrcnn.io.h5_legacy import WeightsError, read_weights, write_legacy_h5
from mrcnn.io.weights_inspect import inspect_weights
from mrcnn.io.weights import load_weights, save_weights

REPO = Path(__file__).resolve().parents[1]
HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]
V20_TRAINING = "mask_rcnn_coco_v2.0_training_layout.json"
MASTER_INFERENCE = "master_inference_layout_r101_81.json"


# ----------------------------------------------------------------------------- helpers


def layout(reference_dir, name) -> list[dict]:
    return json.loads((reference_dir / "matterport_h5" / name).read_text())


def layers_with_values(entries: list[dict], seed: int = 0):
    """[(layer, [(weight_name, seeded float32 array)])] in the layout's order."""
    rng = np.random.default_rng(seed)
    return [(e["name"], [(w, rng.standard_normal(s, dtype=np.float32)) for w, s in e["weights"]])
            for e in entries]


def resnet50_layout(entries: list[dict]) -> list[dict]:
    """The resnet101 layout without res4 blocks g..w (resnet50 has res4a..res4f)."""
    return [e for e in entries if not re.match(r"(res|bn)4[g-w]_", e["name"])]


def file_value(wfile, layer, weight_name):
    return dict(wfile.layers[layer])[weight_name]


@pytest.fixture(scope="module")
def v20_file(reference_dir, tmp_path_factory):
    """Full-size file with the released mask_rcnn_coco.h5 layout (training save, 257 MB)."""
    path = tmp_path_factory.mktemp("weights") / "mask_rcnn_coco_layout.h5"
    write_legacy_h5(path, layers_with_values(layout(reference_dir, V20_TRAINING)),
                    keras_version="2.0.8")
    return path


# ----------------------------------------------------------------------------- a tiny model

ROI_SHAPE = (2, 4, 4, 8)  # [rois, h, w, channels] input of the TimeDistributed head


def tiny_model(num_classes: int = 5, seed: int = 0) -> keras.Model:
    """Layers named like matterport's: conv1, bn_conv1, nested rpn_model, mrcnn_mask_deconv
    (Conv2DTranspose), mrcnn_class_logits (Dense), mrcnn_class_conv1 (TimeDistributed) and a
    weightless Reshape mrcnn_bbox."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((16, 16, 3), name="input_image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(image)
    x = keras.layers.BatchNormalization(name="bn_conv1")(x)
    feature = keras.Input((None, None, 8), name="input_rpn_feature_map")
    shared = keras.layers.Conv2D(16, 3, padding="same", name="rpn_conv_shared")(feature)
    rpn_class = keras.layers.Conv2D(6, 1, name="rpn_class_raw")(shared)
    rpn_bbox = keras.layers.Conv2D(12, 1, name="rpn_bbox_pred")(shared)
    rpn_class, rpn_bbox = keras.Model(feature, [rpn_class, rpn_bbox], name="rpn_model")(x)
    mask = keras.layers.Conv2DTranspose(4, 2, strides=2, name="mrcnn_mask_deconv")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool_squeeze")(x)
    logits = keras.layers.Dense(num_classes, name="mrcnn_class_logits")(pooled)
    bbox = keras.layers.Reshape((num_classes, 1), name="mrcnn_bbox")(logits)
    rois = keras.Input(ROI_SHAPE, name="input_rois")
    td = keras.layers.TimeDistributed(keras.layers.Conv2D(3, 4), name="mrcnn_class_conv1")(rois)
    return keras.Model([image, rois], [rpn_class, rpn_bbox, mask, bbox, td], name="tiny")


def tiny_file_layers(num_classes: int = 5, seed: int = 1):
    """What matterport's Keras 2 would save for ``tiny_model``: {layer: {weight name: array}}.

    Written by hand (names and shapes from the Keras layer definitions above), so the
    tests do not depend on how weights.py maps variables.
    """
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    return {
        "conv1": {"conv1/kernel:0": r(3, 3, 3, 8), "conv1/bias:0": r(8)},
        "bn_conv1": {f"bn_conv1/{k}:0": r(8) for k in ("gamma", "beta", "moving_mean",
                                                       "moving_variance")},
        "rpn_model": {"rpn_conv_shared/kernel:0": r(3, 3, 8, 16), "rpn_conv_shared/bias:0": r(16),
                      "rpn_class_raw/kernel:0": r(1, 1, 16, 6), "rpn_class_raw/bias:0": r(6),
                      "rpn_bbox_pred/kernel:0": r(1, 1, 16, 12), "rpn_bbox_pred/bias:0": r(12)},
        "mrcnn_mask_deconv": {"mrcnn_mask_deconv/kernel:0": r(2, 2, 4, 8),
                              "mrcnn_mask_deconv/bias:0": r(4)},
        "mrcnn_class_logits": {"mrcnn_class_logits/kernel:0": r(8, num_classes),
                               "mrcnn_class_logits/bias:0": r(num_classes)},
        "mrcnn_class_conv1": {"mrcnn_class_conv1/kernel:0": r(4, 4, 8, 3),
                              "mrcnn_class_conv1/bias:0": r(3)},
    }


def write_tiny_file(path, spec, order=None, weightless=("input_image", "mrcnn_bbox")):
    order = order or list(spec)[::-1]  # not the model's order: loading must go by name
    layers = [(n, list(spec[n].items())) for n in order] + [(n, []) for n in weightless]
    write_legacy_h5(path, layers)
    return path


def model_variable(model, layer, weight_name):
    """The variable a file weight belongs to, found through Keras' own layer API."""
    sub, leaf = weight_name[:-2].split("/")
    top = model.get_layer(layer)
    if isinstance(top, keras.layers.TimeDistributed):
        top = top.layer
    elif isinstance(top, keras.Model):
        top = top.get_layer(sub)
    return next(v for v in top.weights if v.name == leaf)


def assert_loaded(model, spec, layers):
    for layer in layers:
        for weight_name, value in spec[layer].items():
            np.testing.assert_array_equal(model_variable(model, layer, weight_name).numpy(), value,
                                          err_msg=f"{layer}/{weight_name}")


def snapshot(model):
    return [v.numpy().copy() for v in model.weights]


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("name,str_attrs", [(V20_TRAINING, "vlen"), (MASTER_INFERENCE, "str"),
                                            (MASTER_INFERENCE, "bytes")])
def test_read_full_layouts_with_every_attribute_encoding(reference_dir, tmp_path, name, str_attrs):
    entries = layout(reference_dir, name)
    layers = layers_with_values(entries, seed=3)
    path = tmp_path / "w.h5"
    write_legacy_h5(path, layers, str_attrs=str_attrs)

    with h5py.File(path) as h5:  # the file really is encoded as asked, the way Keras 2 laid it out
        first = np.asarray(h5.attrs["layer_names"]).ravel()[0]
        assert isinstance(first, str if str_attrs == "str" else bytes)
        assert isinstance(h5.attrs["backend"], str if str_attrs != "bytes" else bytes)
        assert h5["conv1"]["conv1"]["kernel:0"].shape == (7, 7, 3, 64)
        assert h5["rpn_model"]["rpn_conv_shared"]["kernel:0"].shape == (3, 3, 256, 512)
        empty = h5["input_image"].attrs["weight_names"]
        assert empty.dtype == np.float64 and empty.size == 0

    wfile = read_weights(path)
    assert wfile.layer_names == [e["name"] for e in entries]
    assert len(wfile.weighted_layer_names) == 233
    assert wfile.backend == "tensorflow" and wfile.keras_version == "2.1.6"
    for (layer, weights), entry in zip(layers, entries):
        got = wfile.layers[layer]
        assert [w for w, _ in got] == [w for w, _ in entry["weights"]]
        for (_, want), (_, have) in zip(weights, got):
            assert have.dtype == np.float32
            np.testing.assert_array_equal(have, want)


def test_read_file_written_by_plain_h5py_like_keras2(tmp_path):
    """A file written without our writer: S-array names, vlen scalars, empty float64 weight_names."""
    path = tmp_path / "k2.h5"
    kernel = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"input_image", b"conv1"])
        h5.attrs.create("backend", data=b"tensorflow", dtype=h5py.string_dtype("ascii"))
        h5.attrs.create("keras_version", data=b"2.0.8", dtype=h5py.string_dtype("ascii"))
        h5.create_group("input_image").attrs["weight_names"] = np.asarray([])
        group = h5.create_group("conv1")
        group.attrs["weight_names"] = np.array([b"conv1/kernel:0", b"conv1/bias:0"])
        group.create_dataset("conv1/kernel:0", data=kernel)
        group.create_dataset("conv1/bias:0", data=np.ones(4, np.float32))
    wfile = read_weights(path)
    assert wfile.layer_names == ["input_image", "conv1"]
    assert wfile.layers["input_image"] == []
    assert [w for w, _ in wfile.layers["conv1"]] == ["conv1/kernel:0", "conv1/bias:0"]
    np.testing.assert_array_equal(wfile.layers["conv1"][0][1], kernel)
    assert wfile.keras_version == "2.0.8"


def test_read_chunked_layer_names_and_full_model_save(tmp_path):
    """Keras 2 split long name lists into layer_names0, layer_names1, ...; model.save()
    put the weights under /model_weights."""
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["keras_version"] = "2.2.4"
        root = h5.create_group("model_weights")
        root.attrs["layer_names0"] = np.array([b"a", b"b"])
        root.attrs["layer_names1"] = np.array([b"c"])
        for name in "abc":
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/bias:0".encode()])
            group.create_dataset(f"{name}/bias:0", data=np.full(2, ord(name), np.float32))
    wfile = read_weights(path)
    assert wfile.layer_names == ["a", "b", "c"]
    np.testing.assert_array_equal(wfile.layers["c"][0][1], [99.0, 99.0])
    assert "model_weights" in inspect_weights(path).layout


# ----------------------------------------------------------------------------- bad files


def bad_files(tmp_path, small_file):
    truncated = tmp_path / "truncated.h5"
    data = small_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n")
    not_keras = tmp_path / "other.h5"
    with h5py.File(not_keras, "w") as h5:
        h5.create_dataset("x", data=np.zeros(3))
    damaged = tmp_path / "damaged.h5"
    with h5py.File(damaged, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"conv1"])
        h5.create_group("conv1").attrs["weight_names"] = np.array([b"conv1/kernel:0"])
    not_utf8 = tmp_path / "not_utf8.h5"
    with h5py.File(not_utf8, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"conv\xff1"])
    group_weight = tmp_path / "group_weight.h5"
    with h5py.File(group_weight, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"conv1"])
        group = h5.create_group("conv1")
        group.attrs["weight_names"] = np.array([b"conv1/kernel:0"])
        group.create_group("conv1/kernel:0")
    int_names = tmp_path / "int_names.h5"
    with h5py.File(int_names, "w") as h5:
        h5.attrs["layer_names"] = np.array([1, 2])
    return {"missing": (tmp_path / "nope.h5", "not found"),
            "damaged": (damaged, "conv1/kernel:0 is missing"),
            "not utf-8": (not_utf8, "not UTF-8"),
            "group weight": (group_weight, "conv1/kernel:0 is a group, not an array"),
            "int names": (int_names, "expected a string attribute"),
            "truncated": (truncated, "truncated"),
            "not hdf5": (text, "not an HDF5 file"),
            "not keras": (not_keras, "not a Keras 2 weights file"),
            "directory": (tmp_path, "directory")}


@pytest.mark.parametrize("case", ["missing", "truncated", "not hdf5", "not keras", "damaged", "not utf-8",
                                  "group weight", "int names", "directory"])
def test_bad_files_give_one_line_errors(tmp_path, case):
    small = write_tiny_file(tmp_path / "small.h5", tiny_file_layers())
    path, phrase = bad_files(tmp_path, small)[case]
    model = tiny_model()
    for call in (read_weights, inspect_weights, lambda p: load_weights(model, p)):
        with pytest.raises(WeightsError) as info:
            call(path)
        message = str(info.value)
        assert phrase in message and str(path) in message
        assert "\n" not in message


def test_hdf5_file_with_a_user_block_is_read(tmp_path):
    path = tmp_path / "userblock.h5"
    with h5py.File(path, "w", userblock_size=512) as h5:
        h5.attrs["layer_names"] = np.array([b"conv1"])
        group = h5.create_group("conv1")
        group.attrs["weight_names"] = np.array([b"conv1/bias:0"])
        group.create_dataset("conv1/bias:0", data=np.arange(3, dtype=np.float32))
    assert path.read_bytes()[:8] != b"\x89HDF\r\n\x1a\n"
    np.testing.assert_array_equal(read_weights(path).layers["conv1"][0][1], [0, 1, 2])


def test_truncated_error_gives_both_sizes(tmp_path):
    small = write_tiny_file(tmp_path / "small.h5", tiny_file_layers())
    path, _ = bad_files(tmp_path, small)["truncated"]
    with pytest.raises(WeightsError, match=f"{path.stat().st_size:,} of {small.stat().st_size:,} bytes"):
        read_weights(path)


# ----------------------------------------------------------------------------- loading (tiny model)


def test_load_by_name_puts_every_weight_on_its_variable(tmp_path, caplog):
    spec = tiny_file_layers()
    path = write_tiny_file(tmp_path / "w.h5", spec)
    model = tiny_model()
    with caplog.at_level(logging.INFO, logger="mrcnn.io.weights"):
        report = load_weights(model, path)
    assert_loaded(model, spec, spec)
    assert sorted(report.loaded) == sorted(spec)
    assert report.excluded == report.in_file_not_in_model == report.in_model_not_in_file == []
    n_params = sum(v.size for layer in spec.values() for v in layer.values())
    assert report.parameters_loaded == n_params
    assert f"{n_params:,} parameters" in report.summary()
    assert report.summary() in caplog.text


def test_report_lists_layers_missing_on_either_side(tmp_path, caplog):
    spec = tiny_file_layers()
    spec["fpn_c5p5"] = {"fpn_c5p5/kernel:0": np.ones((1, 1, 2, 2), np.float32)}
    del spec["mrcnn_mask_deconv"]
    path = write_tiny_file(tmp_path / "w.h5", spec)
    model = tiny_model()
    before = model.get_layer("mrcnn_mask_deconv").kernel.numpy().copy()
    with caplog.at_level(logging.INFO, logger="mrcnn.io.weights"):
        report = load_weights(model, path)
    assert report.in_file_not_in_model == ["fpn_c5p5"]
    assert report.in_model_not_in_file == ["mrcnn_mask_deconv"]
    assert "fpn_c5p5" not in report.loaded
    np.testing.assert_array_equal(model.get_layer("mrcnn_mask_deconv").kernel.numpy(), before)
    assert "In model but not in file" in report.summary()
    assert any(r.levelno == logging.WARNING and "mrcnn_mask_deconv" in r.getMessage()
               for r in caplog.records)


def test_class_count_mismatch_names_layer_shapes_and_class_count_and_changes_nothing(tmp_path):
    # The fix (NUM_CLASSES or exclude=...) is added by MaskRCNN.load_weights, which knows the config:
    # tests/test_model.py checks it.
    path = write_tiny_file(tmp_path / "w.h5", tiny_file_layers(num_classes=81))
    model = tiny_model(num_classes=5)
    before = snapshot(model)
    with pytest.raises(WeightsError) as info:
        load_weights(model, path)
    message = str(info.value)
    assert "mrcnn_class_logits" in message
    assert "(8, 81)" in message and "(8, 5)" in message
    assert "81 classes" in message and info.value.file_classes == 81
    assert info.value.layers == ["mrcnn_class_logits"]
    assert "\n" not in message
    for old, var in zip(before, model.weights):  # checked before anything was assigned
        np.testing.assert_array_equal(var.numpy(), old)


def test_exclude_heads_loads_the_rest(tmp_path):
    spec = tiny_file_layers(num_classes=81)
    path = write_tiny_file(tmp_path / "w.h5", spec)
    model = tiny_model(num_classes=5)
    head_before = model.get_layer("mrcnn_class_logits").kernel.numpy().copy()
    report = load_weights(model, path, exclude=HEADS)
    assert report.excluded == ["mrcnn_class_logits"]  # mrcnn_bbox has no weights
    rest = [n for n in spec if n != "mrcnn_class_logits"]
    assert sorted(report.loaded) == sorted(rest)
    assert report.in_model_not_in_file == []
    assert_loaded(model, spec, rest)
    np.testing.assert_array_equal(model.get_layer("mrcnn_class_logits").kernel.numpy(), head_before)


def test_different_weight_set_is_an_error(tmp_path):
    spec = tiny_file_layers()
    del spec["conv1"]["conv1/bias:0"]  # a file saved from a conv without bias
    path = write_tiny_file(tmp_path / "w.h5", spec)
    with pytest.raises(WeightsError, match="'conv1' has weights"):
        load_weights(tiny_model(), path)


def test_weights_in_file_for_a_weightless_model_layer_is_an_error(tmp_path):
    spec = tiny_file_layers()
    spec["mrcnn_bbox"] = {"mrcnn_bbox/kernel:0": np.ones((2, 2), np.float32)}
    path = write_tiny_file(tmp_path / "w.h5", spec, weightless=("input_image",))
    with pytest.raises(WeightsError, match="'mrcnn_bbox' has 1 weights in the file but none"):
        load_weights(tiny_model(), path)


def test_weights_are_matched_by_sublayer_and_leaf_not_position(tmp_path):
    """bias before kernel, rpn sublayers in another order: still each on its own variable."""
    spec = tiny_file_layers()
    spec["conv1"] = dict(reversed(list(spec["conv1"].items())))
    spec["rpn_model"] = dict(reversed(list(spec["rpn_model"].items())))
    path = write_tiny_file(tmp_path / "w.h5", spec)
    model = tiny_model()
    load_weights(model, path)
    assert_loaded(model, spec, spec)


def test_keras2_suffixed_variable_names_load_by_position_within_the_layer(tmp_path):
    """Keras 2 named variables conv1_1/kernel:0 when a model was built twice in a session."""
    spec = tiny_file_layers()
    spec["conv1"] = {k.replace("conv1/", "conv1_1/"): v for k, v in spec["conv1"].items()}
    path = write_tiny_file(tmp_path / "w.h5", spec)
    model = tiny_model()
    load_weights(model, path)
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(),
                                  spec["conv1"]["conv1_1/kernel:0"])


def test_by_name_false_only_when_the_order_matches(tmp_path):
    spec = tiny_file_layers()
    model = tiny_model()
    model_order = [layer.name for layer in model.layers if layer.weights]
    same = write_tiny_file(tmp_path / "same.h5", spec, order=model_order)
    load_weights(model, same, by_name=False)
    assert_loaded(model, spec, spec)
    other = write_tiny_file(tmp_path / "other.h5", spec, order=model_order[::-1])
    with pytest.raises(WeightsError, match="by_name=True"):
        load_weights(model, other, by_name=False)
    load_weights(model, other, by_name=False, exclude=["mrcnn_bbox"])  # exclude forces by name


def test_unbuilt_model_is_an_error(tmp_path):
    path = write_tiny_file(tmp_path / "w.h5", tiny_file_layers())
    with pytest.raises(WeightsError, match="build it"):
        load_weights(keras.Sequential([keras.layers.Dense(2, name="conv1")]), path)


# ----------------------------------------------------------------------------- saving (tiny model)


def test_save_writes_keras2_layout_and_round_trips_exactly(tmp_path):
    source = tiny_model(seed=1)
    path = tmp_path / "saved.h5"
    save_weights(source, path)
    with h5py.File(path) as h5:
        names = [n.decode() for n in h5.attrs["layer_names"]]
        assert names == [layer.name for layer in source.layers]  # weightless layers included
        assert "input_image" in names and "mrcnn_bbox" in names
        assert h5["mrcnn_bbox"].attrs["weight_names"].size == 0
        assert [n.decode() for n in h5["bn_conv1"].attrs["weight_names"]] == [
            "bn_conv1/gamma:0", "bn_conv1/beta:0", "bn_conv1/moving_mean:0", "bn_conv1/moving_variance:0"]
        assert h5["rpn_model/rpn_class_raw/kernel:0"].shape == (1, 1, 16, 6)
        assert h5["mrcnn_class_conv1/mrcnn_class_conv1/kernel:0"].shape == (4, 4, 8, 3)
        assert h5["mrcnn_mask_deconv/mrcnn_mask_deconv/kernel:0"].shape == (2, 2, 4, 8)
        np.testing.assert_array_equal(h5["rpn_model/rpn_bbox_pred/bias:0"][()],
                                      source.get_layer("rpn_model").get_layer("rpn_bbox_pred").bias.numpy())
    target = tiny_model(seed=2)
    assert not np.array_equal(target.get_layer("conv1").kernel.numpy(),
                              source.get_layer("conv1").kernel.numpy())
    report = load_weights(target, path)
    assert len(report.loaded) == 6 and report.in_model_not_in_file == []
    for a, b in zip(source.weights, target.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert [p.name for p in tmp_path.iterdir()] == ["saved.h5"]  # no temp file left
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_save_with_chosen_layer_names(tmp_path):
    model = tiny_model()
    path = tmp_path / "w.h5"
    save_weights(model, path, layer_names=["mrcnn_class_logits", "conv1"])
    assert read_weights(path).layer_names == ["mrcnn_class_logits", "conv1"]
    with pytest.raises(WeightsError, match="fpn_p2"):
        save_weights(model, tmp_path / "x.h5", layer_names=["conv1", "fpn_p2"])
    assert not (tmp_path / "x.h5").exists()


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "w.h5"
    write_legacy_h5(path, [("conv1", [("conv1/bias:0", np.ones(2, np.float32))])])
    old = path.read_bytes()
    with pytest.raises(TypeError):
        write_legacy_h5(path, [("conv1", [("conv1/bias:0", np.array([object()]))])])
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]


# ----------------------------------------------------------------------------- inspect


def test_inspect_released_layout(v20_file):
    info = inspect_weights(v20_file)
    assert info.mode == "training"
    assert info.backbone == "resnet101"
    assert info.num_classes == 81
    assert info.num_parameters == 64_158_584
    assert info.num_non_trainable == 111_488
    assert (info.num_layers, info.num_weighted_layers, info.num_arrays) == (406, 233, 690)
    assert info.keras_version == "2.0.8" and "legacy" in info.layout


def test_inspect_resnet50_inference_and_weighted_only_files(reference_dir, tmp_path):
    entries = resnet50_layout(layout(reference_dir, MASTER_INFERENCE))
    path = tmp_path / "r50.h5"
    zeros = [(e["name"], [(w, np.zeros(s, np.float32)) for w, s in e["weights"]]) for e in entries]
    write_legacy_h5(path, zeros)
    info = inspect_weights(path)
    assert (info.backbone, info.mode, info.num_classes) == ("resnet50", "inference", 81)
    assert (info.num_weighted_layers, info.num_parameters) == (131, 45_088_120)
    # Without the weightless layers (no mrcnn_detection etc.), the head order still tells.
    training = resnet50_layout(layout(reference_dir, V20_TRAINING))
    for entries, mode in ((training, "training"), (entries, "inference")):
        write_legacy_h5(path, [(e["name"], [(w, np.zeros(s, np.float32)) for w, s in e["weights"]])
                               for e in entries if e["weights"]])
        assert inspect_weights(path).mode == mode


def test_cli_inspect_text_json_layers_and_errors(v20_file, tmp_path):
    from fseg.cli import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["weights", "inspect", str(v20_file)])
    assert result.exit_code == 0, result.output
    for fact in ("training", "resnet101", "81", "64,158,584", "233 with weights"):
        assert fact in result.output

    result = runner.invoke(cli, ["weights", "inspect", str(v20_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["num_classes"], data["num_parameters"], data["mode"]) == (81, 64_158_584, "training")
    assert "layers" not in data

    result = runner.invoke(cli, ["weights", "inspect", str(v20_file), "--layers"])
    assert "mrcnn_mask_deconv: mrcnn_mask_deconv/kernel:0 (2, 2, 256, 256)" in result.output

    text = tmp_path / "x.h5"
    text.write_text("hello")
    result = runner.invoke(cli, ["weights", "inspect", str(text)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["weights", "inspect", str(tmp_path / "missing.h5")])
    assert result.exit_code == 2


# ----------------------------------------------------------------------------- the real model


def _model_config(num_classes):
    from mrcnn.config import Config

    class SmallConfig(Config):
        NAME = "weights_test"
        NUM_CLASSES = num_classes
        BACKBONE = "resnet101"
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128

    return SmallConfig()


def _variables_by_file_name(keras_model):
    """{(layer, weight name as matterport's file spells it): variable}, via Keras' layer API."""
    found = {}
    for top in keras_model.layers:
        inner = top.layers if isinstance(top, keras.Model) else [top]
        for layer in inner:
            sublayer = layer.layer if isinstance(layer, keras.layers.TimeDistributed) else layer
            for var in sublayer.weights:
                found[(top.name, f"{layer.name}/{var.name}:0")] = var
    return found


@pytest.mark.slow
def test_released_layout_loads_into_inference_model_and_round_trips(v20_file, tmp_path):
    """The issue's acceptance test: 233 weighted layers land on the right variables."""
    from mrcnn.model import MaskRCNN

    wfile = read_weights(v20_file)
    model = MaskRCNN(mode="inference", config=_model_config(81), model_dir=tmp_path)
    report = model.load_weights(str(v20_file), by_name=True)
    assert len(report.loaded) == 233 and report.in_model_not_in_file == []
    variables = _variables_by_file_name(model.keras_model)
    checked_layers, checked_arrays = set(), 0
    for layer in wfile.weighted_layer_names:
        for weight_name, value in wfile.layers[layer]:
            np.testing.assert_array_equal(variables[(layer, weight_name)].numpy(), value,
                                          err_msg=f"{layer}/{weight_name}")
            checked_layers.add(layer)
            checked_arrays += 1
    assert (len(checked_layers), checked_arrays) == (233, 690)
    assert checked_arrays == len(variables)  # no model variable left out

    saved = tmp_path / "saved.h5"
    model.save_weights(str(saved))
    info = inspect_weights(saved)
    assert (info.mode, info.num_weighted_layers, info.num_parameters) == ("inference", 233, 64_158_584)
    fresh = MaskRCNN(mode="inference", config=_model_config(81), model_dir=tmp_path)
    fresh.load_weights(str(saved), by_name=True)
    for a, b in zip(model.keras_model.weights, fresh.keras_model.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_released_layout_into_14_class_model_with_standard_exclude(v20_file, tmp_path):
    from mrcnn.model import MaskRCNN

    model = MaskRCNN(mode="inference", config=_model_config(14), model_dir=tmp_path)
    variables = _variables_by_file_name(model.keras_model)
    heads_before = {k: v.numpy().copy() for k, v in variables.items() if k[0] in HEADS}
    with pytest.raises(WeightsError, match="NUM_CLASSES"):
        model.load_weights(str(v20_file), by_name=True)
    report = model.load_weights(str(v20_file), by_name=True, exclude=HEADS)
    assert sorted(report.excluded) == sorted(["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"])
    assert len(report.loaded) == 230 and report.in_model_not_in_file == []
    wfile = read_weights(v20_file)
    for (layer, weight_name), var in variables.items():
        if layer in HEADS:
            np.testing.assert_array_equal(var.numpy(), heads_before[(layer, weight_name)])
        else:
            np.testing.assert_array_equal(var.numpy(), file_value(wfile, layer, weight_name))
    # matterport's default by_name=False still matches by name in MaskRCNN (by order would
    # be wrong: the file is a training-mode save), so the excluded heads stay untouched.
    report = model.load_weights(str(v20_file), exclude=HEADS)
    assert len(report.loaded) == 230


def test_a_scalar_class_head_tells_no_class_count(tmp_path):
    path = tmp_path / "scalar_head.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = np.array([b"mrcnn_class_logits"])
        group = h5.create_group("mrcnn_class_logits")
        group.attrs["weight_names"] = np.array([b"mrcnn_class_logits/kernel:0"])
        group.create_dataset("mrcnn_class_logits/kernel:0", data=np.float32(1))
    assert inspect_weights(path).num_classes is None
