#!/usr/bin/env python3
"""How fast can ``detect()`` be on this CPU? The arithmetic of the model against the CPU's convolution rate.

Two measurements, each in a fresh process:

1. **Arithmetic of one detect().** The inference graph of ``scripts/bench_predict.py``'s config
   (``fseg_config``: 1024x1024, one image, 81 classes) is traced and every convolution in it is counted: multiply-accumulates (MAC) =
   output pixels x output channels x kernel height x kernel width x input channels (the mask head's
   transposed convolution likewise, by its input). Head convolutions run on a number of ROIs only known
   at run time; they are counted for POST_NMS_ROIS_INFERENCE ROIs (box head, 7x7 input) and
   DETECTION_MAX_INSTANCES detections (mask head, 14x14 input), the work of a detect() that returns
   DETECTION_MAX_INSTANCES instances.
2. **The CPU's convolution rate.** The model's largest convolution (the RPN's shared 3x3 conv on P2:
   [1, S/4, S/4, TOP_DOWN_PYRAMID_SIZE] -> 2 x TOP_DOWN_PYRAMID_SIZE channels) timed with TensorFlow
   (oneDNN), best of --runs calls after a warm-up, in --repeat processes (the best of all: the host's
   speed varies from minute to minute, and the ceiling is what it reaches), with 1 and --threads threads,
   in float32 and, where the CPU has native bfloat16 (``mrcnn.modeling.precision``), in bfloat16.

The quotient is a floor: no implementation doing this arithmetic with direct convolutions in that
precision can finish a detect() faster on this machine (the rest of detect(), proposals, NMS, ROI Align,
mask pasting, only adds to it). Nothing here depends on the weights, so random ones are used.

Usage:
  python scripts/bench_conv_rate.py [--backbone resnet50] [--threads 2] [--runs 5] [--repeat 3]
Prints a Markdown table and a JSON summary (with the load average before and after).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_predict import IMAGE_SIDE, fseg_config  # noqa: E402  (the config bench_predict.py times)


def count_macs(backbone: str) -> dict:
    """MACs of every convolution of one detect() of bench_predict.py, by part of the network."""
    import tensorflow as tf
    from mrcnn.model import MaskRCNN

    config = fseg_config(backbone)
    size = IMAGE_SIDE
    model = MaskRCNN(mode="inference", config=config, model_dir="/tmp/fseg_bench_conv_rate")
    image = tf.zeros([1, size, size, 3], tf.float32)
    meta = tf.zeros([1, config.IMAGE_META_SIZE], tf.float32)
    anchors = tf.constant(model.get_anchors((size, size))[None])
    graph = model._infer.get_concrete_function(image, meta, anchors).graph
    parts: dict[str, float] = {}
    for op in graph.get_operations():
        if op.type == "Conv2D":
            kernel = op.inputs[1].shape  # [kh, kw, cin, cout]
            out = op.outputs[0].shape  # [n, h, w, cout]
            pixels = out[1] * out[2]
        elif op.type == "Conv2DBackpropInput":  # transposed conv: each input pixel meets the whole kernel
            kernel = op.inputs[1].shape  # [kh, kw, cout, cin]
            out = op.inputs[2].shape  # its input [n, h, w, cin]
            pixels = out[1] * out[2]
        else:
            continue
        count = out[0]
        if count is None:  # a head: ROIs known only at run time
            count = config.POST_NMS_ROIS_INFERENCE if pixels <= 7 * 7 else config.DETECTION_MAX_INSTANCES
        macs = count * pixels * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        part = _part_of(op.name)
        parts[part] = parts.get(part, 0.0) + macs / 1e9
    return parts


def _part_of(op_name: str) -> str:
    """The part of the network a graph op belongs to, from matterport's layer names."""
    name = op_name.split("/")[1] if "/" in op_name else op_name
    if name.startswith(("conv1", "res")):
        return "backbone"
    if name.startswith("fpn"):
        return "fpn"
    if name.startswith("rpn"):
        return "rpn"
    if name.startswith("mrcnn_mask"):
        return "mask head"
    if name.startswith("mrcnn_class") or name.startswith("mrcnn_bbox"):
        return "box head"
    return "other"


def conv_rate(size: int, channels: int, threads: int, dtype: str, runs: int) -> float:
    """GMAC/s of the RPN's 3x3 conv on P2 ([1, size/4, size/4, channels] -> 2 x channels)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    side = size // 4
    x = tf.random.normal([1, side, side, channels], dtype=tf.float32)
    kernel = tf.random.normal([3, 3, channels, 2 * channels], dtype=tf.float32) * 0.01
    if dtype == "bf16":
        x, kernel = tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16)
    conv = tf.function(lambda value: tf.nn.conv2d(value, kernel, 1, "SAME"))
    conv(x).numpy()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        conv(x).numpy()
        seconds.append(time.perf_counter() - start)
    return side * side * 9 * channels * 2 * channels / 1e9 / min(seconds)


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed calls per process")
    parser.add_argument("--repeat", type=int, default=3, help="processes per setting (best reported)")
    parser.add_argument("--child", choices=["macs", "rate"], help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "macs":
        print(json.dumps(count_macs(args.backbone)))
        return
    if args.child == "rate":
        channels = fseg_config(args.backbone).TOP_DOWN_PYRAMID_SIZE
        rate = conv_rate(IMAGE_SIDE, channels, args.child_threads, args.child_dtype, args.runs)
        print(json.dumps({"gmac_per_s": rate}))
        return

    from mrcnn.modeling.precision import PrecisionError, check_precision

    load_before = os.getloadavg()
    common = ["--backbone", args.backbone, "--runs", str(args.runs)]
    parts = run_child([*common, "--child", "macs"])
    total = sum(parts.values())
    dtypes = ["float32"]
    try:
        check_precision("bf16")
        dtypes.append("bf16")
    except PrecisionError:
        pass
    rates = {}
    for _ in range(args.repeat):  # settings alternate, so that each sees the host's good and bad minutes
        for dtype in dtypes:
            for threads in sorted({1, args.threads}):
                child = run_child([*common, "--child", "rate", "--child-threads", str(threads),
                                   "--child-dtype", dtype])
                label = f"{dtype}, {threads} thread(s)"
                rates[label] = max(rates.get(label, 0.0), child["gmac_per_s"])
    load_after = os.getloadavg()

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.backbone} at {IMAGE_SIDE}x{IMAGE_SIDE}, "
          f"load {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("| part | GMAC |\n|---|---:|")
    for part, gmac in sorted(parts.items(), key=lambda item: -item[1]):
        print(f"| {part} | {gmac:.1f} |")
    print(f"| **all convolutions** | **{total:.1f}** |\n")
    print("| precision, threads | conv GMAC/s (best) | detect() floor s = GMAC / rate |\n|---|---:|---:|")
    for label, rate in rates.items():
        print(f"| {label} | {rate:.1f} | {total / rate:.2f} |")
    print(json.dumps({"backbone": args.backbone, "size": IMAGE_SIDE, "gmac": parts, "gmac_total": total,
                      "gmac_per_s": rates, "load_before": load_before, "load_after": load_after}))


if __name__ == "__main__":
    main()
