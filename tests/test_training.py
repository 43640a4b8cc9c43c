"""Training mode: layer groups, gradient clipping, mixed precision, distribution (mrcnn.train, training_graph).

One small model (resnet50, 64 px images, few ROIs) is built once per module; single
steps run eagerly (``run_eagerly=True``), which on CPU is faster than tracing the
training graph for one step. The distribution tests run in subprocesses because
logical devices and MultiWorkerMirroredStrategy must be set up before TensorFlow starts.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# A config small enough for a CPU step in seconds (overrides of configs/deepfashion2.toml).
SMALL = dict(BACKBONE="resnet50", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64, TRAIN_ROIS_PER_IMAGE=16,
             POST_NMS_ROIS_TRAINING=100, PRE_NMS_LIMIT=500, MAX_GT_INSTANCES=5, RPN_TRAIN_ANCHORS_PER_IMAGE=32,
             MINI_MASK_SHAPE=[14, 14], RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128], IMAGES_PER_GPU=2,
             STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
LEARNING_RATE = 0.01


def small_config(**overrides):
    from mrcnn.config import load_config, with_overrides

    config = load_config(REPO / "configs" / "deepfashion2.toml")
    return with_overrides(config, **{**SMALL, **overrides})


def make_split(folder: Path, images: int = 6, seed: int = 3) -> tuple[Path, Path]:
    """A generated DeepFashion2-like split converted to COCO: (annotations json, image folder)."""
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split

    generate_split(folder / "split", images, seed=seed, min_side=64, max_side=128, workers=1)
    convert_split(folder / "split", folder / "train.json", workers=1)
    return folder / "train.json", folder / "split" / "image"


def load_dataset(annotations, images, config):
    from mrcnn.data.coco import CocoDataset

    dataset = CocoDataset()
    dataset.load_coco(annotations, images, class_names=config.CLASS_NAMES)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_split(tmp_path_factory.mktemp("training_split"))


@pytest.fixture(scope="module")
def model(split, tmp_path_factory):
    from mrcnn.model import MaskRCNN

    return MaskRCNN("training", small_config(), model_dir=tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def batch(split):
    from mrcnn.data.pipeline import build_training_dataset

    config = small_config()
    return next(iter(build_training_dataset(load_dataset(*split, config), config, seed=0, augment=False)))


def snapshot(keras_model) -> dict:
    """{variable path: value copy} of every variable of the model (trainable or not)."""
    return {v.path: np.array(v.numpy()) for v in keras_model.weights}


def one_step(mrcnn_model, batch, layers: str, config=None, learning_rate: float = LEARNING_RATE, max_tries=1,
             loss_scale=None):
    """One eager SGD step of the layer group; returns (trainer, logs). Retries while the
    (mixed precision) loss-scale optimizer skips non-finite steps, at most ``max_tries`` steps.
    ``loss_scale``: wrap the SGD in a LossScaleOptimizer with this initial scale."""
    import keras

    from mrcnn.train import layer_groups
    from mrcnn.train import step as training

    config = config or mrcnn_model.config
    layer_groups.set_trainable(mrcnn_model.keras_model, layer_groups.layer_regex(layers))
    model = training.TrainingModel(mrcnn_model.keras_model, config)
    optimizer = training.make_optimizer(config, learning_rate)
    if loss_scale is not None:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=loss_scale)
    model.compile(optimizer=optimizer, run_eagerly=True)
    for _ in range(max_tries):
        logs = model.train_on_batch(batch, return_dict=True)
        if int(model.optimizer.iterations.numpy()) > 0:
            break
    return model, logs


def global_step_norm(before: dict, after: dict) -> float:
    """L2 norm of the change of all variables together."""
    return float(np.sqrt(sum(np.sum((after[p].astype(np.float64) - before[p]) ** 2) for p in before)))


def changed_and_unchanged(before: dict, after: dict) -> tuple[set, set]:
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    return changed, set(before) - changed


def layer_of(path: str) -> str:
    """'rpn_model/rpn_conv_shared/kernel' -> 'rpn_conv_shared'; 'res4a_branch2a/kernel' -> 'res4a_branch2a'."""
    return path.split("/")[-2]


def is_bn_statistic(path: str) -> bool:
    return path.endswith("moving_mean") or path.endswith("moving_variance")


# ------------------------------------------------------------------ layer groups
def test_heads_step_changes_only_head_layers(model, batch):
    before = snapshot(model.keras_model)
    _, logs = one_step(model, batch, "heads")
    changed, unchanged = changed_and_unchanged(before, snapshot(model.keras_model))

    assert np.isfinite(logs["loss"])
    heads = ("rpn_", "fpn_", "mrcnn_")
    assert changed, "the step changed nothing"
    assert all(layer_of(p).startswith(heads) for p in changed), sorted(changed)[:5]
    backbone = [p for p in before if not layer_of(p).startswith(heads)]
    assert backbone and all(p in unchanged for p in backbone)
    # The layers every batch trains (the box and mask heads only learn from positive ROIs,
    # which a randomly initialised RPN may not propose; weight decay alone is below float32 resolution).
    always = {"rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred", "fpn_c5p5", "fpn_p2",
              "mrcnn_class_conv1", "mrcnn_class_logits"}
    assert always <= {layer_of(p) for p in changed if p.endswith("kernel")}
    assert not any(is_bn_statistic(p) for p in changed)


def test_4plus_step_changes_res4_res5_and_heads_but_not_res2_res3(model, batch):
    before = snapshot(model.keras_model)
    one_step(model, batch, "4+")
    changed, unchanged = changed_and_unchanged(before, snapshot(model.keras_model))

    def stage(path):
        name = layer_of(path)
        for prefix in ("res", "bn"):
            if name.startswith(prefix) and name[len(prefix):len(prefix) + 1].isdigit():
                return int(name[len(prefix)])
        return None

    frozen = [p for p in before if stage(p) in (2, 3) or layer_of(p) in ("conv1", "bn_conv1")]
    trained_kernels = [p for p in before if stage(p) in (4, 5) and p.endswith("kernel")]
    assert frozen and all(p in unchanged for p in frozen)
    assert trained_kernels and set(trained_kernels) <= changed
    assert any(layer_of(p).startswith("mrcnn_") for p in changed)
    # TRAIN_BN is False: BatchNorm runs in inference mode, its moving statistics never move.
    bn_stats = [p for p in before if is_bn_statistic(p)]
    assert bn_stats and all(p in unchanged for p in bn_stats)


def test_gradient_clipping_uses_the_global_norm(model, batch):
    """With a GRADIENT_CLIP_NORM far below the gradient's norm, the first SGD step moves the
    weights by exactly lr * clip (the L2 norm over all variables together)."""
    clip, learning_rate = 0.1, 0.1
    before = snapshot(model.keras_model)
    one_step(model, batch, "heads", config=small_config(GRADIENT_CLIP_NORM=clip), learning_rate=learning_rate)
    assert global_step_norm(before, snapshot(model.keras_model)) == pytest.approx(learning_rate * clip, rel=1e-3)


def test_fit_traces_the_training_step_once(split, tmp_path, monkeypatch):
    """The optimizer's slot variables exist before fit: created inside the first trace of the step, they
    made TensorFlow trace the whole step a second time (seconds of every fit's first epoch)."""
    from mrcnn.model import MaskRCNN
    from mrcnn.train.step import TrainingModel

    traces = []
    original = TrainingModel.train_step

    def counted(self, data):
        traces.append(1)  # Python runs once per trace of the graph function
        return original(self, data)

    monkeypatch.setattr(TrainingModel, "train_step", counted)
    config = small_config(BACKBONE="resnet18_half", TOP_DOWN_PYRAMID_SIZE=32, STEPS_PER_EPOCH=2)
    model = MaskRCNN("training", config, model_dir=tmp_path)
    history = model.train(load_dataset(*split, config), None, learning_rate=0.001, epochs=1, layers="all",
                          seed=0, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert len(traces) == 1


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_follows_keras_sgd_step_for_step(nesterov):
    """The fused update (one kernel per variable) is Keras' SGD rule: after five steps with
    momentum on the same gradients, weights and momentum buffers are equal."""
    import keras
    import tensorflow as tf

    from mrcnn.train.step import MomentumSGD

    rng = np.random.default_rng(0)
    start = [rng.normal(size=shape).astype(np.float32) for shape in ((3, 4), (4,), (2, 2, 3))]
    gradients = [[rng.normal(size=w.shape).astype(np.float32) for w in start] for _ in range(5)]
    finals = []
    for optimizer in (keras.optimizers.SGD(0.05, momentum=0.9, nesterov=nesterov),
                      MomentumSGD(0.05, momentum=0.9, nesterov=nesterov)):
        variables = [keras.Variable(w) for w in start]
        for step_gradients in gradients:
            optimizer.apply_gradients(zip([tf.constant(g) for g in step_gradients], variables))
        finals.append([v.numpy() for v in variables] + [m.numpy() for m in optimizer.momentums])
    assert not np.allclose(finals[0][0], start[0])
    for keras_value, fused_value in zip(*finals):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-6)


def test_fused_adam_follows_keras_adam_step_for_step():
    """The fused Adam update is Keras' rule (bias correction, epsilon outside the root): after five
    steps on the same gradients, weights and both moment buffers are equal."""
    import keras
    import tensorflow as tf

    from mrcnn.train.step import FusedAdam

    rng = np.random.default_rng(1)
    start = [rng.normal(size=shape).astype(np.float32) for shape in ((3, 4), (4,), (2, 2, 3))]
    gradients = [[rng.normal(size=w.shape).astype(np.float32) for w in start] for _ in range(5)]
    finals = []
    for optimizer in (keras.optimizers.Adam(0.01), FusedAdam(0.01)):
        variables = [keras.Variable(w) for w in start]
        for step_gradients in gradients:
            optimizer.apply_gradients(zip([tf.constant(g) for g in step_gradients], variables))
        finals.append([v.numpy() for v in variables] + [m.numpy() for m in optimizer._momentums]
                      + [v.numpy() for v in optimizer._velocities])
    assert not np.allclose(finals[0][0], start[0])
    for keras_value, fused_value in zip(*finals):
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-6)


def test_the_config_chooses_the_optimizer():
    from mrcnn.train.step import FusedAdam, MomentumSGD, make_optimizer

    sgd = make_optimizer(small_config(LEARNING_MOMENTUM=0.8), 0.01)
    assert isinstance(sgd, MomentumSGD) and sgd.momentum == pytest.approx(0.8)
    assert make_optimizer(small_config(), 0.01, momentum=0.5).momentum == pytest.approx(0.5)
    adam = make_optimizer(small_config(OPTIMIZER="adam"), 0.001)
    assert isinstance(adam, FusedAdam) and float(adam.learning_rate) == pytest.approx(0.001)


def test_layer_regex_rejects_a_bad_regex():
    from mrcnn.train.layer_groups import LAYER_GROUPS, layer_regex

    assert layer_regex("heads") == LAYER_GROUPS["heads"]
    assert layer_regex(r"rpn_.*") == r"rpn_.*"
    with pytest.raises(Exception):
        layer_regex("res(4")


# ------------------------------------------------------------------ mixed precision
def test_mixed_precision_step_on_cpu(split, batch, tmp_path):
    """float16 compute, float32 box layers and losses; the loss scale is undone before clipping."""
    import keras

    from mrcnn.model import MaskRCNN

    clip, learning_rate = 0.1, 0.1
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = MaskRCNN("training", small_config(GRADIENT_CLIP_NORM=clip), model_dir=tmp_path)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    graph = mixed.keras_model
    assert graph.get_layer("conv1").compute_dtype == "float16"
    assert graph.get_layer("conv1").variable_dtype == "float32"
    for name in ("ROI", "proposal_targets", "roi_align_classifier", "roi_align_mask", "anchors"):
        assert graph.get_layer(name).compute_dtype == "float32", name

    # compile() wraps the optimizer in a LossScaleOptimizer for the mixed graph by itself ...
    from mrcnn.train import step as training

    auto = training.TrainingModel(graph, mixed.config)
    auto.compile(optimizer=training.make_optimizer(mixed.config, learning_rate))
    assert isinstance(auto.optimizer, keras.optimizers.LossScaleOptimizer)
    # ... whose first scale, 2**15, overflows float16 gradients of a random model for several
    # steps (skipped, as designed); a step with a scale of 8 is applied at once.
    before = snapshot(graph)
    trainer, logs = one_step(mixed, batch, "heads", learning_rate=learning_rate, max_tries=2, loss_scale=8.0)
    after = snapshot(graph)
    assert int(trainer.optimizer.iterations.numpy()) == 1, "every step was skipped as non-finite"
    assert all(np.isfinite(float(v)) for v in logs.values())
    # The loss scale multiplies the gradients; clipping must see the unscaled norm,
    # so the step is lr * clip, not lr * clip / scale.
    assert global_step_norm(before, after) == pytest.approx(learning_rate * clip, rel=2e-2)
    assert all(v.dtype == "float32" for v in graph.weights)


# ------------------------------------------------------------------ distribution
# The start of a script run on two logical CPUs (MirroredStrategy): argv[1], argv[2] = the repository and
# tests/ (run_python(script, REPO, REPO / "tests", ...)); it gives the script this module as ``t``.
TWO_CPUS_PREAMBLE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    import test_training as t
""")

MIRRORED_SCRIPT = TWO_CPUS_PREAMBLE + textwrap.dedent("""
    import numpy as np
    from mrcnn.train import layer_groups
    from mrcnn.train import step as training
    from mrcnn.data.pipeline import build_training_dataset
    from mrcnn.model import MaskRCNN

    annotations, images, logs = sys.argv[3:6]
    single_config = t.small_config(IMAGES_PER_GPU=1)
    element = next(iter(build_training_dataset(t.load_dataset(annotations, images, single_config),
                                               single_config, seed=0, augment=False)))
    # The same image twice: each replica's loss then equals the whole batch's.
    batch = {k: tf.concat([v, v], axis=0) for k, v in element.items()}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    for optimizer, clip, learning_rate in (("sgd", 0.0, 0.01), ("sgd", 0.1, 1.0), ("adam", 0.0, 0.001)):
        config = t.small_config(IMAGES_PER_GPU=1, GPU_COUNT=2, GRADIENT_CLIP_NORM=clip, OPTIMIZER=optimizer)
        single = MaskRCNN("training", config, model_dir=logs)
        mirrored = MaskRCNN("training", config, model_dir=logs, strategy=strategy)
        mirrored.keras_model.set_weights(single.keras_model.get_weights())
        updates, losses, states = [], [], []
        for m in (single, mirrored):
            before = [np.array(w) for w in m.keras_model.get_weights()]
            layer_groups.set_trainable(m.keras_model, "rpn_.*")
            with m.strategy.scope():
                trainer = training.TrainingModel(m.keras_model, config)
                trainer.compile(optimizer=training.make_optimizer(config, learning_rate), run_eagerly=True)
            history = trainer.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0, shuffle=False)
            after = m.keras_model.get_weights()
            updates.append([a - b for a, b in zip(after, before)])
            losses.append({k: history.history[k][0] for k in ("rpn_class_loss", "rpn_bbox_loss")})
            states.append([np.array(v) for v in trainer.optimizer.variables  # the momentum (and velocity) buffers
                           if v.name not in ("iteration", "learning_rate")])
        diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(*updates))
        size = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in updates[0])
        step_norms = [float(np.sqrt(sum(np.sum(np.square(u, dtype=np.float64)) for u in us))) for us in updates]
        state_diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(*states))
        state_size = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in states[0])
        results[f"{optimizer} clip {clip}"] = {
            "max_diff": diff, "max_update": size, "losses": losses, "step_norms": step_norms, "clip": clip,
            "state_diff": state_diff, "state_size": state_size,
            "learning_rate": learning_rate, "replicas": mirrored.strategy.num_replicas_in_sync}
    print("RESULT " + json.dumps(results))
""")


def run_python(script: str, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=REPO)


def result_of(process: subprocess.CompletedProcess) -> dict:
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_mirrored_strategy_on_two_cpus_matches_one_device(split, tmp_path):
    """The update on 2 replicas (one image each) equals the one-device update on both images:
    replica losses are divided by the replica count (no clipping: a missing division would
    double the update), and clipping sees the summed gradient (Keras alone would clip each
    replica's half and their sum would be twice too long). The optimizer's moments agree too; for Adam they
    are the check (its first step is about lr * sign(gradient) per weight, whatever the gradient's scale, and
    flips with rounding where a gradient is ~0, so its weights are not compared)."""
    results = result_of(run_python(MIRRORED_SCRIPT, REPO, REPO / "tests", *split, tmp_path))
    assert len(results) == 3
    for case, result in results.items():
        clip = result["clip"]
        assert result["replicas"] == 2
        assert result["max_update"] > 0 and result["state_size"] > 0, case
        assert result["state_diff"] <= 1e-3 * result["state_size"] + 1e-12, (case, result)
        if not case.startswith("adam"):
            assert result["max_diff"] <= 1e-3 * result["max_update"] + 1e-9, (case, result)
        single, mirrored = result["losses"]
        for name in single:
            assert mirrored[name] == pytest.approx(single[name], rel=1e-4), (case, name)
        if clip > 0:  # clipping was active: both steps are exactly lr * clip long
            for norm in result["step_norms"]:
                assert norm == pytest.approx(result["learning_rate"] * float(clip), rel=1e-3)


MULTI_WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    import test_training as t
    from mrcnn.model import MaskRCNN

    annotations, images, logs = sys.argv[3:6]
    config = t.small_config(IMAGES_PER_GPU=1, GPU_COUNT=strategy.num_replicas_in_sync)  # one image per worker
    dataset = t.load_dataset(annotations, images, config)
    model = MaskRCNN("training", config, model_dir=logs, strategy=strategy)
    history = model.train(dataset, None, learning_rate=0.001, epochs=1, layers="heads", seed=0, verbose=0)
    files = sorted(os.listdir(model.log_dir)) if os.path.isdir(model.log_dir) else []
    print("RESULT " + json.dumps({"loss": history.history["loss"][0], "epoch": model.epoch, "files": files,
                                  "replicas": strategy.num_replicas_in_sync}))
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_worker_strategy_single_worker_trains_an_epoch(split, tmp_path):
    tf_config = {"cluster": {"worker": [f"localhost:{free_port()}"]}, "task": {"type": "worker", "index": 0}}
    process = run_python(MULTI_WORKER_SCRIPT, REPO, REPO / "tests", *split, tmp_path,
                         env={"TF_CONFIG": json.dumps(tf_config)})
    result = result_of(process)
    assert result["replicas"] == 1
    assert np.isfinite(result["loss"])
    assert result["epoch"] == 1
    assert "mask_rcnn_deepfashion2_0001.h5" in result["files"]


def run_two_workers(arguments) -> list[dict]:
    """Runs ``python -c script args...`` as workers 0 and 1 of a MultiWorkerMirroredStrategy cluster on
    loopback ports, ``(script, *args) = arguments(index)``; returns each worker's RESULT, in index order."""
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(tf_config)}
        script, *args = arguments(index)
        processes.append(subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env, cwd=REPO))
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=1500)  # generous: a loaded machine is slow
            results.append(result_of(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results


def test_multi_worker_strategy_two_workers_on_loopback(split, tmp_path):
    """Two worker processes on this machine: they train one step each epoch together (one
    image each), report the same (all-reduced) loss, and only the chief writes files."""
    chief, other = run_two_workers(lambda index: (MULTI_WORKER_SCRIPT, REPO, REPO / "tests", *split,
                                                  tmp_path / f"logs{index}"))
    assert chief["replicas"] == other["replicas"] == 2
    assert np.isfinite(chief["loss"]) and chief["loss"] == pytest.approx(other["loss"], rel=1e-6)
    assert "mask_rcnn_deepfashion2_0001.h5" in chief["files"] and "training_log.csv" in chief["files"]
    assert other["files"] == []


SHARDED_INPUT_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[2])
    import test_training as t
    from mrcnn.data.coco import CocoDataset
    from mrcnn.data.pipeline import build_training_dataset
    from mrcnn.train.stage import training_input

    decoded = []

    class RecordingDataset(CocoDataset):
        def load_image(self, image_id):
            decoded.append(int(image_id))
            return super().load_image(image_id)

    annotations, images = sys.argv[3:5]
    config = t.small_config(IMAGES_PER_GPU=1, GPU_COUNT=strategy.num_replicas_in_sync)
    dataset = RecordingDataset()
    dataset.load_coco(annotations, images, class_names=config.CLASS_NAMES)
    dataset.prepare()
    batches = training_input(strategy, config, lambda shard, batch_size: build_training_dataset(
        dataset, config, shard=shard, batch_size=batch_size, shuffle=False, repeat=False, augment=False, seed=0))
    served = []
    for batch in batches:
        for meta in strategy.experimental_local_results(batch["input_image_meta"]):
            served += [int(v) for v in meta[:, 0].numpy()]
    print("RESULT " + json.dumps({"decoded": sorted(decoded), "served": served, "images": dataset.num_images}))
""")


def test_two_workers_read_and_decode_disjoint_shards_covering_the_set(split, tmp_path):
    """Issue 12: on two workers (loopback) each input pipeline decodes only its own images, split before
    decoding; the two shards are disjoint and together are every image once."""
    results = run_two_workers(lambda index: (SHARDED_INPUT_SCRIPT, REPO, REPO / "tests", *split))
    count = results[0]["images"]
    first, second = (set(r["decoded"]) for r in results)
    assert first and second and not first & second
    assert first | second == set(range(count))
    for result in results:
        assert len(result["decoded"]) == len(set(result["decoded"]))  # each image decoded once
        assert sorted(result["served"]) == result["decoded"]  # what a worker serves is what it decoded


def test_is_chief_for_worker_roles():
    from types import SimpleNamespace

    from mrcnn.train.callbacks import is_chief

    def strategy(task_type, task_id, cluster):
        spec = SimpleNamespace(as_dict=lambda: cluster)
        return SimpleNamespace(cluster_resolver=SimpleNamespace(task_type=task_type, task_id=task_id,
                                                                cluster_spec=lambda: spec))

    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief(SimpleNamespace())  # no cluster: a single process
    assert is_chief(strategy("worker", 0, workers))
    assert not is_chief(strategy("worker", 1, workers))
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert is_chief(strategy("chief", 0, with_chief))
    assert not is_chief(strategy("worker", 0, with_chief))


# ------------------------------------------------------------------ small pieces
def test_signals_are_held_back_while_a_checkpoint_is_recorded():
    import signal

    from mrcnn.train.callbacks import signals_deferred

    # Python's own Ctrl-C handler, whatever this process inherited: a shell starts background jobs
    # with SIGINT ignored, and then Python never installs it (the test would see no KeyboardInterrupt).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_deferred():
                signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the block
                steps.append("after the signal")
        assert steps == ["after the signal"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler before the block
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_validation_steps_never_exceed_the_full_batches_available():
    from types import SimpleNamespace

    from mrcnn.train.stage import validation_steps

    config = SimpleNamespace(VALIDATION_STEPS=50, BATCH_SIZE=2)
    assert validation_steps(SimpleNamespace(image_ids=list(range(7))), config) == 3
    assert validation_steps(SimpleNamespace(image_ids=list(range(500))), config) == 50
    assert validation_steps(SimpleNamespace(image_ids=[0]), config) == 0


@pytest.mark.parametrize("stop_after", [2, None])
def test_the_progress_bar_of_an_epoch_stopped_early_ends_on_the_steps_run(stop_after, capsys):
    # A time limit or a signal stops the epoch after `stop_after` of 5 steps: its last progress line
    # says 2/5 (the CSV marks it partial), where Keras' own bar jumped to 5/5.
    import keras

    from mrcnn.train.callbacks import PartialEpochProgbar

    class StopAfter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if stop_after is not None and batch + 1 == stop_after:
                self.model.stop_training = True

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((10, 3)), np.zeros((10, 1)), batch_size=2, epochs=1, verbose=1,
              callbacks=[StopAfter(), PartialEpochProgbar()])
    shown = capsys.readouterr().out
    if stop_after is None:
        assert "5/5" in shown, shown
    else:
        assert "2/5" in shown and "5/5" not in shown, shown
