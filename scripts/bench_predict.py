#!/usr/bin/env python3
"""Speed and peak memory of ``MaskRCNN.detect()`` on CPU, side by side with torchvision's Mask R-CNN.

One run measures, on the same 1024x1024 RGB image (test_img/test.png resized):
  fseg resnet50         mrcnn.model.MaskRCNN(mode="inference").detect([image])
  fseg resnet101        the same with BACKBONE = "resnet101"
  torchvision resnet50  torchvision.models.detection.maskrcnn_resnet50_fpn(...)
  torchvision resnet101 the same architecture on a ResNet-101 body (--torch-backbones)
Each model runs in its own subprocess (so peak RSS is its own, read with os.wait4),
with random weights (each framework's own initialisation), a fixed number of CPU
threads N in both frameworks (TF intra- and inter-op threads = N; torch.set_num_threads(N)
and set_num_interop_threads(N); OMP_NUM_THREADS = N), --warmup untimed calls, then
--runs timed calls; the median is reported, with min and max.

What one timed call covers (the same work on both sides, image in, NumPy results out):
  fseg         detect(): mold (resize, mean subtraction), network, unmold (boxes to pixels,
               28x28 masks pasted into 1024x1024 bool masks).
  torchvision  uint8 HWC array -> float CHW tensor / 255, model([tensor]) under
               torch.inference_mode() (normalisation, network, masks pasted into the image),
               masks thresholded at 0.5 and everything converted to NumPy.
Both sides run the mask head on 100 detections: fseg with DETECTION_MIN_CONFIDENCE = 0
(no score filter) and DETECTION_MAX_INSTANCES = 100; torchvision with box_score_thresh = 0.0
(its default 0.05 would drop most boxes of a random-weight model) and its default
box_detections_per_img = 100. Every other setting is each framework's default
(RPN: fseg keeps 6000 anchors before NMS and 1000 proposals after; torchvision keeps
1000 per FPN level before NMS and 1000 after). The number of detections of each call
is reported, so a side that ran fewer masks is visible.

Setup (torchvision is a benchmark-only dependency, never installed by the project):
  python3 -m venv --system-site-packages ~/.venvs/fseg-bench    # sees the system TensorFlow
  ~/.venvs/fseg-bench/bin/pip install torch==2.14.1 torchvision==0.29.1
  ~/.venvs/fseg-bench/bin/python scripts/bench_predict.py
(on aarch64: torch==2.9.1 torchvision==0.24.1). Without torch, --no-torchvision times fseg only.

Two more settings (issue 12):
  --precisions float32,bf16   fseg also with MaskRCNN(precision="bf16") (mrcnn.modeling.precision):
                              the trunk in bfloat16, outputs in float32; same weights.
  --default-confidence        each framework's default score threshold instead of 100 detections:
                              fseg DETECTION_MIN_CONFIDENCE 0.7, torchvision box_score_thresh 0.05;
                              the calls cycle over the seed photos (test_img/*.png, each resized to
                              1024x1024). With random weights few boxes pass either threshold, so this
                              times the "few garments in a photo" case; detection counts are reported.

Usage:
  python scripts/bench_predict.py [--runs 5] [--warmup 2] [--rounds 1] [--threads 2]
      [--backbones resnet50,resnet101] [--torch-backbones resnet50,resnet101] [--precisions float32,bf16]
      [--default-confidence] [--json FILE]
Prints a Markdown table (and writes the raw numbers as JSON with --json).
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_SOURCE = REPO / "test_img" / "test.png"
IMAGE_SIDE = 1024
NUM_CLASSES = 81  # COCO-like: background + 80
MAX_DETECTIONS = 100
TORCH_INSTALL = ("python3 -m venv --system-site-packages ~/.venvs/fseg-bench && "
                 "~/.venvs/fseg-bench/bin/pip install torch==2.14.1 torchvision==0.29.1")


# ----------------------------------------------------------------- the image
def write_bench_images(path: Path, seed_photos: bool) -> None:
    """Writes the benchmark images as one [k, 1024, 1024, 3] uint8 .npy: test_img/test.png (k = 1), or
    every test_img/*.png (``seed_photos``), each as RGB resized to 1024x1024."""
    import numpy as np
    from PIL import Image

    sources = sorted(IMAGE_SOURCE.parent.glob("*.png")) if seed_photos else [IMAGE_SOURCE]
    images = []
    for source in sources:
        with Image.open(source) as img:
            images.append(np.asarray(img.convert("RGB").resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)))
    np.save(path, np.stack(images).astype(np.uint8))


def time_calls(call, warmup: int, runs: int) -> dict:
    """Runs ``call()`` (which returns its number of detections) warmup + runs times.

    Returns {"seconds": wall seconds, "cpu_seconds": process CPU seconds (all threads),
    "detections": counts}, one entry per timed run.
    """
    for _ in range(warmup):
        call()
    timed = {"seconds": [], "cpu_seconds": [], "detections": []}
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        count = call()
        timed["seconds"].append(time.perf_counter() - wall)
        timed["cpu_seconds"].append(time.process_time() - cpu)
        timed["detections"].append(int(count))
    return timed


# ------------------------------------------------------------- fseg worker
def fseg_config(backbone: str, default_confidence: bool = False):
    """The benchmark's mrcnn Config: 1024x1024 square, one image, 81 classes, no score filter
    (``default_confidence``: matterport's DETECTION_MIN_CONFIDENCE 0.7)."""
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench_predict"
        BACKBONE = backbone
        NUM_CLASSES = 81
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = IMAGE_SIDE
        IMAGE_MAX_DIM = IMAGE_SIDE
        DETECTION_MIN_CONFIDENCE = Config.DETECTION_MIN_CONFIDENCE if default_confidence else 0.0
        DETECTION_MAX_INSTANCES = MAX_DETECTIONS

    return BenchConfig()


def run_fseg(backbone: str, image_path: str, threads: int, warmup: int, runs: int, precision: str = "float32",
             default_confidence: bool = False) -> dict:
    """Times MaskRCNN.detect on the images (cycling); returns the worker's result dict."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    sys.path.insert(0, str(REPO))
    from mrcnn.model import MaskRCNN

    images = itertools.cycle(np.load(image_path))
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = MaskRCNN(mode="inference", config=fseg_config(backbone, default_confidence),
                     model_dir=tempfile.gettempdir(), precision=precision)
    build_seconds = time.perf_counter() - start

    def call() -> int:
        result = model.detect([next(images)])[0]
        return result["masks"].shape[-1]

    start = time.perf_counter()
    call()  # the first call traces the tf.function
    first_call = time.perf_counter() - start
    timed = time_calls(call, max(warmup - 1, 0), runs)
    return {"framework": "fseg", "backbone": backbone, "precision": precision, **timed,
            "build_seconds": build_seconds, "first_call_seconds": first_call,
            "parameters": int(model.keras_model.count_params()),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}


# ------------------------------------------------------ torchvision worker
def torchvision_model(backbone: str, default_confidence: bool = False):
    """torchvision Mask R-CNN, random weights, 81 classes, 1024 input, box_score_thresh 0 (or its default)."""
    import torch.nn as nn
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.resnet import Bottleneck

    settings = dict(num_classes=NUM_CLASSES, min_size=IMAGE_SIDE, max_size=IMAGE_SIDE)
    if not default_confidence:
        settings["box_score_thresh"] = 0.0
    if backbone == "resnet50":
        return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, **settings)
    # What maskrcnn_resnet50_fpn builds without weights, on a ResNet-101 body (BatchNorm2d, all layers).
    body = resnet_fpn_backbone(backbone_name=backbone, weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5)
    # With its default random init, ResNet-101's 33 residual blocks grow the activations to ~1e5, the RPN
    # deltas overflow and every proposal is dropped (0 detections, no mask head). Zeroing the last BN scale
    # of each block (torchvision's zero_init_residual) keeps them in range; the arithmetic done is unchanged.
    for module in body.body.modules():
        if isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)
    return MaskRCNN(body, **settings)


def run_torchvision(backbone: str, image_path: str, threads: int, warmup: int, runs: int,
                    precision: str = "float32", default_confidence: bool = False) -> dict:
    """Times torchvision's Mask R-CNN on the images (cycling; float32 only); returns the worker's result dict."""
    import numpy as np
    import torch
    import torchvision

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(0)
    images = itertools.cycle(np.load(image_path))
    start = time.perf_counter()
    model = torchvision_model(backbone, default_confidence).eval()
    build_seconds = time.perf_counter() - start

    def call() -> int:
        with torch.inference_mode():
            tensor = torch.from_numpy(next(images)).permute(2, 0, 1).float().div_(255.0)
            out = model([tensor])[0]
            masks = (out["masks"][:, 0] > 0.5).numpy()
            out["boxes"].numpy(), out["labels"].numpy(), out["scores"].numpy()
        return masks.shape[0]

    start = time.perf_counter()
    call()
    first_call = time.perf_counter() - start
    timed = time_calls(call, max(warmup - 1, 0), runs)
    return {"framework": "torchvision", "backbone": backbone, "precision": "float32", **timed,
            "build_seconds": build_seconds, "first_call_seconds": first_call,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__}}


WORKERS = {"fseg": run_fseg, "torchvision": run_torchvision}


def worker_main(args) -> None:
    """Subprocess entry: runs one model, prints its result dict as the last stdout line."""
    result = WORKERS[args.worker](args.backbone, args.image, args.threads, args.warmup, args.runs,
                                  args.precision, args.default_confidence)
    with open("/proc/self/status") as status:
        peak = [line.split()[1] for line in status if line.startswith("VmHWM:")]
    result["vmhwm_kib"] = int(peak[0]) if peak else None
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------- parent
def run_worker(framework: str, backbone: str, precision: str, image: Path, args) -> dict:
    """Runs one worker subprocess; adds its peak RSS (os.wait4 ru_maxrss, KiB) and wall time."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--backbone", backbone,
               "--image", str(image), "--threads", str(args.threads), "--warmup", str(args.warmup),
               "--runs", str(args.runs), "--precision", precision,
               *(["--default-confidence"] if args.default_confidence else [])]
    print(f"[bench_predict] {framework} {backbone} {precision} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"Error: the {framework} {backbone} {precision} worker failed (exit {process.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024.0
    result["process_seconds"] = time.perf_counter() - start
    result["load_average_1min_at_end"] = os.getloadavg()[0]
    return result


def model_key(result: dict) -> tuple[str, str]:
    """(name, backbone) of a result: "fseg", "fseg bf16", "torchvision"."""
    precision = result.get("precision", "float32")
    return (result["framework"] if precision == "float32" else f"{result['framework']} {precision}",
            result["backbone"])


def merge_rounds(results: list[dict]) -> list[dict]:
    """Pools the runs of the same model over rounds (first-seen order); peak RSS is the max of the rounds."""
    merged: dict[tuple[str, str], dict] = {}
    for r in results:
        key = model_key(r)
        if key not in merged:
            merged[key] = {**r, "rounds": 1}
            continue
        m = merged[key]
        for field in ("seconds", "cpu_seconds", "detections"):
            m[field] = m[field] + r[field]
        m["peak_rss_mib"] = max(m["peak_rss_mib"], r["peak_rss_mib"])
        m["rounds"] += 1
    return list(merged.values())


def summarize(results: list[dict]) -> str:
    """Markdown table: median wall and CPU seconds per image, peak RSS, ratios to torchvision.

    Ratios are given for the medians and for the fastest runs (on a shared machine the fastest
    run is the one least slowed down by other jobs).
    """
    medians = {model_key(r): statistics.median(r["seconds"]) for r in results}
    bests = {model_key(r): min(r["seconds"]) for r in results}

    def ratio(key, table, reference_backbone):
        reference = table.get(("torchvision", reference_backbone))
        return f"{table[key] / reference:.2f}" if reference else "-"

    lines = ["| model | s/image median | fastest | slowest | CPU s/image | detections | peak RSS MiB "
             "| × tv r50 (median / fastest) | × tv same backbone (median / fastest) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        key = model_key(r)
        counts = "/".join(map(str, sorted(set(r["detections"]))))
        lines.append(
            f"| {key[0]} {key[1]} | {medians[key]:.2f} | {bests[key]:.2f} | {max(r['seconds']):.2f} "
            f"| {statistics.median(r['cpu_seconds']):.2f} | {counts} | {r['peak_rss_mib']:.0f} "
            f"| {ratio(key, medians, 'resnet50')} / {ratio(key, bests, 'resnet50')} "
            f"| {ratio(key, medians, r['backbone'])} / {ratio(key, bests, r['backbone'])} |")
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--runs", type=int, default=5, help="timed calls per model (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per model before timing")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every model this many times, in alternating order, and pool the runs "
                             "(spreads the load of a shared machine evenly over the models)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads for both frameworks (default: all cores)")
    parser.add_argument("--backbones", default="resnet50,resnet101", help="fseg backbones to time")
    parser.add_argument("--torch-backbones", default="resnet50,resnet101",
                        help="torchvision backbones to time (resnet50 is torchvision's maskrcnn_resnet50_fpn)")
    parser.add_argument("--no-torchvision", action="store_true", help="time fseg only")
    parser.add_argument("--precisions", default="float32",
                        help="fseg precisions to time, e.g. float32,bf16 (torchvision runs in float32)")
    parser.add_argument("--default-confidence", action="store_true",
                        help="each framework's default score threshold, calls cycling over test_img/*.png")
    parser.add_argument("--json", type=Path, help="also write the raw results to this JSON file")
    # Internal: run one model in this process (the parent starts one subprocess per model).
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return
    jobs = [("fseg", b, p) for b in args.backbones.split(",") if b for p in args.precisions.split(",") if p]
    torch_jobs = [] if args.no_torchvision else [("torchvision", b, "float32")
                                                 for b in args.torch_backbones.split(",") if b]
    if torch_jobs:
        # Checked here so a missing torchvision is a one-line error, not a worker's traceback.
        if importlib.util.find_spec("torchvision") is None:
            raise SystemExit(f"Error: torchvision is not installed in {sys.executable}; install it with:\n"
                             f"  {TORCH_INSTALL}\nor pass --no-torchvision")
    # Each torchvision model right before the fseg model of the same backbone: paired runs see similar load.
    backbones = list(dict.fromkeys(b for _, b, _ in torch_jobs + jobs))
    jobs = sorted(torch_jobs + jobs, key=lambda job: (backbones.index(job[1]), job[0] == "fseg"))
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        image = Path(tmp) / "image.npy"
        write_bench_images(image, args.default_confidence)
        load_before = load_average()
        results = []
        for round_index in range(args.rounds):
            order = jobs if round_index % 2 == 0 else jobs[::-1]
            results += [run_worker(framework, backbone, precision, image, args)
                        for framework, backbone, precision in order]
        results = merge_rounds(results)
        load_after = load_average()
    header = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
              f"{os.cpu_count()} cores, threads={args.threads}, rounds={args.rounds} x runs={args.runs}, "
              f"warmup={args.warmup}, "
              f"load average before {load_before}, after {load_after}")
    versions = {k: v for r in results for k, v in r["versions"].items()}
    print(header)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print(summarize(results))
    for r in results:
        print(f"{' '.join(model_key(r))}: runs {[round(s, 2) for s in r['seconds']]}, "
              f"first call {r['first_call_seconds']:.1f} s, build {r['build_seconds']:.1f} s, "
              f"{r['parameters']:,} parameters, VmHWM {r['vmhwm_kib'] / 1024:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "versions": versions, "results": results}, indent=1))


if __name__ == "__main__":
    main()
