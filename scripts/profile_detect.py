#!/usr/bin/env python3
"""Where the time of ``MaskRCNN.detect()`` goes: each stage timed on its own, on CPU.

The inference graph is cut into stage models that share the built model's layers
(or copies of them, with the same weights), each run as a tf.function on the real
output of the stage before it, on the same 1024x1024 image as scripts/bench_predict.py:

  mold          NumPy: resize + mean subtraction (MaskRCNN.mold_inputs) and the anchors
  backbone      ResNet C1..C5
  fpn           P2..P6 (reported as backbone+fpn minus backbone)
  rpn heads     the shared RPN convs on P2..P6
  proposals     top-k, delta apply, clip, NMS (ProposalLayer)
  box head      ROIAlign 7x7 of the 1000 proposals + the class/box head
  detection     DetectionLayer (refinement, per-class NMS, top 100)
  mask head     ROIAlign 14x14 of the 100 detections + the mask head
  unmold        NumPy: boxes to pixels, 28x28 masks pasted into full-size bool masks

Each stage: median of --runs calls after one untimed call. The full detect() is timed
the same way for comparison; the sum of the stages should be close to it.
--clock cpu measures process CPU time (all threads) instead of wall time: on a machine
shared with other jobs, CPU time with --threads 1 is far less disturbed by their load.

Usage:
  python scripts/profile_detect.py [--backbone resnet50] [--runs 5] [--threads 2] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def median_seconds(fn, runs: int):
    """Calls fn() once untimed, then ``runs`` times; returns (median seconds of ``clock``, last result)."""
    result = fn()
    times = []
    for _ in range(runs):
        start = clock()
        result = fn()
        times.append(clock() - start)
    return statistics.median(times), result


def copy_weights_by_name(target, source) -> None:
    """Gives every weighted layer of ``target`` the weights of the same-named layer of ``source``."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def stage_models(model, config):
    """The stage models of the inference graph, sharing (or copying) the weights of ``model``.

    Returns a dict name -> keras.Model; see the module docstring for the stages.
    """
    import keras
    from keras import layers

    from mrcnn.layers.glue import DetectionBoxes
    from mrcnn.modeling.box_head import fpn_classifier_head
    from mrcnn.modeling.mask_head import fpn_mask_head

    km = model.keras_model
    image, meta, anchors = km.inputs
    level_names = ["fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6"]
    stages = {
        "backbone": keras.Model(image, [km.get_layer(f"res{s}{b}_out").output for s, b in
                                        [(2, "c"), (3, "d"), (4, _last_block(config)), (5, "c")]]),
        "backbone+fpn": keras.Model(image, [km.get_layer(n).output for n in level_names]),
    }
    depth = config.TOP_DOWN_PYRAMID_SIZE
    p_inputs = [keras.Input((None, None, depth)) for _ in level_names]
    rpn = km.get_layer("rpn_model")
    per_level = [rpn(p) for p in p_inputs]
    rpn_class = layers.Concatenate(axis=1)([lv[1] for lv in per_level])
    rpn_bbox = layers.Concatenate(axis=1)([lv[2] for lv in per_level])
    stages["rpn heads"] = keras.Model(p_inputs, [rpn_class, rpn_bbox])

    class_in = keras.Input((None, 2))
    bbox_in = keras.Input((None, 4))
    anchors_in = keras.Input((None, 4))
    stages["proposals"] = keras.Model([class_in, bbox_in, anchors_in],
                                      km.get_layer("ROI")([class_in, bbox_in, anchors_in]))

    rois_in = keras.Input((config.POST_NMS_ROIS_INFERENCE, 4))
    meta_in = keras.Input((config.IMAGE_META_SIZE,))
    maps_in = [keras.Input((None, None, depth)) for _ in range(4)]
    pooled = km.get_layer("roi_align_classifier")([rois_in, meta_in, *maps_in])
    _, probs, deltas = fpn_classifier_head(pooled, config.POST_NMS_ROIS_INFERENCE, config.NUM_CLASSES,
                                           config.FPN_CLASSIF_FC_LAYERS_SIZE, config.TRAIN_BN)
    stages["box head"] = keras.Model([rois_in, meta_in, *maps_in], [probs, deltas])
    copy_weights_by_name(stages["box head"], km)

    probs_in = keras.Input((config.POST_NMS_ROIS_INFERENCE, config.NUM_CLASSES))
    deltas_in = keras.Input((config.POST_NMS_ROIS_INFERENCE, config.NUM_CLASSES, 4))
    stages["detection"] = keras.Model([rois_in, probs_in, deltas_in, meta_in],
                                      km.get_layer("mrcnn_detection")([rois_in, probs_in, deltas_in, meta_in]))

    det_in = keras.Input((config.DETECTION_MAX_INSTANCES, 6))
    boxes = DetectionBoxes()(det_in)
    pooled = km.get_layer("roi_align_mask")([boxes, meta_in, *maps_in])
    masks = fpn_mask_head(pooled, config.DETECTION_MAX_INSTANCES, config.NUM_CLASSES, config.TRAIN_BN)
    stages["mask head"] = keras.Model([det_in, meta_in, *maps_in], masks)
    copy_weights_by_name(stages["mask head"], km)
    return stages


def _last_block(config) -> str:
    """Letter of the last block of stage 4 (res4<letter>_out)."""
    from mrcnn.registry import BACKBONES

    return chr(ord("a") + BACKBONES.get(config.BACKBONE).stage_blocks[2] - 1)


def profile(backbone: str, runs: int, threads: int) -> list[tuple[str, float]]:
    """Stage timings of detect() for ``backbone``; returns [(stage, median seconds)]."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    import bench_predict
    from mrcnn.ops.unmold import unmold_detections
    from mrcnn.model import MaskRCNN

    keras.utils.set_random_seed(0)
    config = bench_predict.fseg_config(backbone)
    model = MaskRCNN(mode="inference", config=config, model_dir=tempfile.gettempdir())
    with tempfile.TemporaryDirectory() as tmp:
        bench_predict.write_bench_image(Path(tmp) / "image.npy")
        image = np.load(Path(tmp) / "image.npy")
    stages = stage_models(model, config)
    fns = {name: tf.function(m, reduce_retracing=True) for name, m in stages.items()}

    def mold():
        molded, metas, windows = model.mold_inputs([image])
        anchors = model.get_anchors(molded.shape[1:3])[np.newaxis]
        return tf.constant(molded), tf.constant(metas), tf.constant(anchors), windows, molded.shape

    timings = []
    t, (molded, metas, anchors, windows, molded_shape) = median_seconds(mold, runs)
    timings.append(("mold (NumPy) + anchors", t))
    t_backbone, _ = median_seconds(lambda: fns["backbone"](molded), runs)
    timings.append(("backbone (ResNet C1..C5)", t_backbone))
    t, levels = median_seconds(lambda: fns["backbone+fpn"](molded), runs)
    timings.append(("FPN (P2..P6)", t - t_backbone))
    t, (rpn_class, rpn_bbox) = median_seconds(lambda: fns["rpn heads"](levels), runs)
    timings.append(("RPN heads (3x3/512 conv + 1x1s, P2..P6)", t))
    t, rois = median_seconds(lambda: fns["proposals"]([rpn_class, rpn_bbox, anchors]), runs)
    timings.append(("proposals (top-6000, NMS -> 1000)", t))
    t, (probs, deltas) = median_seconds(lambda: fns["box head"]([rois, metas, *levels[:4]]), runs)
    timings.append(("ROIAlign 7x7 + box head (1000 ROIs)", t))
    t, detections = median_seconds(lambda: fns["detection"]([rois, probs, deltas, metas]), runs)
    timings.append(("detection layer (per-class NMS)", t))
    t, masks = median_seconds(lambda: fns["mask head"]([detections, metas, *levels[:4]]), runs)
    timings.append(("ROIAlign 14x14 + mask head (100 ROIs)", t))
    detections, masks = np.asarray(detections), np.asarray(masks)
    t, unmolded = median_seconds(
        lambda: unmold_detections(detections[0], masks[0], image.shape, molded_shape[1:], windows[0]), runs)
    timings.append((f"unmold (NumPy, {unmolded[3].shape[-1]} masks)", t))
    timings.append(("sum of stages", sum(s for _, s in timings)))
    t, _ = median_seconds(lambda: model.detect([image]), runs)
    timings.append(("detect() end to end", t))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50", choices=["resnet50", "resnet101"])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per stage (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="TF intra/inter-op threads")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (steadier on a loaded machine)")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    load_before = os.getloadavg()
    timings = profile(args.backbone, args.runs, args.threads)
    total = dict(timings)["detect() end to end"]
    print(f"{args.backbone}, threads={args.threads}, runs={args.runs}, clock={args.clock}, "
          f"load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    print("| stage | s | % of detect() |\n|---|---|---|")
    for name, seconds in timings:
        print(f"| {name} | {seconds:.3f} | {100 * seconds / total:.0f} |")


if __name__ == "__main__":
    main()
