#!/usr/bin/env python3
"""fseg against matterport's own Mask R-CNN code: first image of a process and steady-state ``detect()``.

Both sides run the same script body through matterport's public API (the point of fseg's
compatibility): ``MaskRCNN(mode="inference", config, model_dir)``, ``load_weights(file, by_name=True)``,
``detect([image])``. Config: matterport's defaults (IMAGE_MIN_DIM 800, IMAGE_MAX_DIM 1024, "square")
with NUM_CLASSES 14, BACKBONE resnet101, DETECTION_MIN_CONFIDENCE 0 (100 detections, so the mask
head runs on 100 ROIs on both sides). Weights: the matterport-layout file of the parity tests
(``shared/reference/matterport_ref/tools/make_weights.py --num-classes 14 --seed 0``).
Image: ``shared/reference/matterport_ref/r512/image1.png`` (512x512, resized to 1024 by both).

Each model runs in a fresh process, alternating, ``--rounds`` times. "first image" is measured from
the process start (before ``import tensorflow``) to the end of the first ``detect()``: imports, build,
weights, tracing, first call. Then ``--runs`` timed ``detect()`` calls (steady state, median).
Threads: TF intra- and inter-op = ``--threads``.

matterport's code is not part of fseg and is not committed: give a checkout of a TF2 port of it
(e.g. z-mahmud22/Mask-RCNN_TF2.14.0, which runs on TF 2.21 with tf_keras) with --matterport and a
Python that has TensorFlow and tf_keras with --matterport-python (it is run with TF_USE_LEGACY_KERAS=1).

Usage:
  python scripts/bench_vs_matterport.py --matterport /path/to/port --matterport-python /path/to/venv/bin/python
      [--weights FILE] [--rounds 2] [--runs 3] [--threads 2] [--precisions float32,bf16]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO.parent / "shared" / "reference" / "matterport_ref" / "r512" / "image1.png"
WEIGHTS = Path(os.environ.get("FSEG_TEST_CACHE", Path.home() / ".cache" / "fseg-tests")) / \
    "matterport_ref_w14_7fa8bb93849c.h5"  # the parity tests' weights file (tests/conftest.py's cache)


def worker(args) -> None:
    """One process: time to the first detection, then steady-state detect() calls. Prints JSON."""
    started = float(args.started)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    sys.path.insert(0, args.code)
    from mrcnn import model as modellib
    from mrcnn.config import Config
    from PIL import Image

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 14
        BACKBONE = "resnet101"
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1
        # matterport's defaults, set explicitly: TF2 ports change some (z-mahmud22's has IMAGE_MIN_DIM 1024
        # and DETECTION_MAX_INSTANCES 35)
        IMAGE_MIN_DIM = 800
        IMAGE_MAX_DIM = 1024
        IMAGE_RESIZE_MODE = "square"
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0

    image = np.asarray(Image.open(args.image).convert("RGB"))
    options = {} if args.precision == "matterport" else {"precision": args.precision}
    model = modellib.MaskRCNN(mode="inference", config=BenchConfig(), model_dir="/tmp/bench_vs_matterport",
                              **options)
    model.load_weights(args.weights, by_name=True)
    first = model.detect([image])[0]
    first_image = time.time() - started
    seconds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        result = model.detect([image])[0]
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"first_image_s": first_image, "seconds": seconds,
                      "detections": [len(first["class_ids"]), len(result["class_ids"])],
                      "mrcnn": modellib.__file__}))


def run(python: str, code: str, precision: str, args, env: dict) -> dict:
    command = [python, str(Path(__file__).resolve()), "--worker", "--code", code, "--precision", precision,
               "--weights", str(args.weights), "--image", str(args.image), "--runs", str(args.runs),
               "--threads", str(args.threads), "--started", repr(time.time())]
    output = subprocess.run(command, env=env, capture_output=True, text=True)
    if output.returncode != 0:
        sys.exit(f"{precision} worker failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matterport", help="folder holding matterport's mrcnn/ package (a TF2 port)")
    parser.add_argument("--matterport-python", help="a Python with TensorFlow and tf_keras")
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--image", type=Path, default=IMAGE)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", default="float32,bf16", help="fseg precisions to run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--started", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if not (args.matterport and args.matterport_python):
        sys.exit("give --matterport DIR and --matterport-python PYTHON (see --help)")
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS=str(args.threads))
    sides = [("matterport", args.matterport_python, args.matterport, "matterport",
              dict(base, TF_USE_LEGACY_KERAS="1"))]
    sides += [(f"fseg {p}", sys.executable, str(REPO), p, base) for p in args.precisions.split(",") if p]
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {name: [] for name, *_ in sides}
    for round_index in range(args.rounds):
        for name, python, code, precision, env in (sides if round_index % 2 == 0 else sides[::-1]):
            print(f"[bench_vs_matterport] round {round_index + 1}: {name}", file=sys.stderr, flush=True)
            results[name].append(run(python, code, precision, args, env))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.threads} threads, {args.rounds} rounds x "
          f"{args.runs} runs, load {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    reference = None
    print("| code | first image s (min of rounds) | detect() s median | x matterport (first / steady) | detections |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        first = min(r["first_image_s"] for r in runs)
        steady = statistics.median(s for r in runs for s in r["seconds"])
        reference = reference or (first, steady)
        counts = sorted({d for r in runs for d in r["detections"]})
        print(f"| {name} | {first:.2f} | {steady:.2f} | {first / reference[0]:.2f} / {steady / reference[1]:.2f} "
              f"| {counts} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
