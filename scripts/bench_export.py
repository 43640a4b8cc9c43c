#!/usr/bin/env python3
"""What an ``fseg export`` costs and gives, against ``MaskRCNN`` on the same weights, on CPU, in one run.

Model: resnet50, 14 classes (DeepFashion2's), IMAGE_MIN_DIM = IMAGE_MAX_DIM = 1024 ("square"),
IMAGES_PER_GPU = 1, DETECTION_MIN_CONFIDENCE = 0 and DETECTION_MAX_INSTANCES = 100 (the mask head
runs on 100 detections, as in scripts/bench_predict.py), random weights saved to a temporary .h5.
Image: test_img/test.png as 1024x1024 RGB (JPEG bytes for serving_default).

Each step runs in its own fresh Python process (the TensorFlow import is not counted in any time):
  keras      build MaskRCNN(mode="inference") + load_weights (the .h5), then detect([image]):
             --warmup untimed calls and --runs timed ones
  export     `fseg export --weights .h5 --config .toml --out DIR` as a subprocess (wall time, TF import
             included, as a user sees it) and the folder's size
  savedmodel tf.saved_model.load(DIR) (no mrcnn import), then detect_image on the pixels and
             serving_default on the JPEG bytes, --warmup + --runs each
Medians with min and max; `uptime` before and after (the machine is shared). Prints Markdown.

Usage:
  python scripts/bench_export.py [--runs 3] [--warmup 1] [--threads 2] [--json FILE]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_SOURCE = REPO / "test_img" / "test.png"
SIDE = 1024
CONFIG = """NAME = "benchexport"
NUM_CLASSES = 14
BACKBONE = "resnet50"
IMAGES_PER_GPU = 1
IMAGE_MIN_DIM = 1024
IMAGE_MAX_DIM = 1024
DETECTION_MIN_CONFIDENCE = 0.0
DETECTION_MAX_INSTANCES = 100
"""


def set_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def timed(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_image(folder: Path):
    import numpy as np
    from PIL import Image

    image = Image.open(IMAGE_SOURCE).convert("RGB").resize((SIDE, SIDE), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    (folder / "image.jpg").write_bytes(buffer.getvalue())
    from mrcnn.io.images import read_image_rgb  # the pixels fseg predict would see

    pixels = read_image_rgb(folder / "image.jpg")
    np.save(folder / "image.npy", pixels)
    return pixels


def child_keras(folder: Path, args) -> dict:
    import tensorflow as tf  # noqa: F401  (imported before the clock starts)

    set_threads(args.threads)
    from mrcnn.config import load_config
    from mrcnn.model import MaskRCNN

    config = load_config(folder / "config.toml")
    weights = folder / "weights.h5"
    if not weights.exists():  # first run: random weights for every later step
        MaskRCNN(mode="inference", config=config, model_dir=str(folder / "logs")).save_weights(str(weights))
        bench_image(folder)
        return {}
    import numpy as np

    start = time.perf_counter()
    model = MaskRCNN(mode="inference", config=config, model_dir=str(folder / "logs"))
    model.load_weights(str(weights), by_name=True)
    build_load = time.perf_counter() - start
    pixels = np.load(folder / "image.npy")
    detections = []
    times = timed(lambda: detections.append(len(model.detect([pixels])[0]["class_ids"])), args.warmup, args.runs)
    return {"build_load_s": build_load, "detect_s": times, "detections": detections[-1]}


def child_savedmodel(folder: Path, args) -> dict:
    import numpy as np
    import tensorflow as tf

    set_threads(args.threads)
    start = time.perf_counter()
    loaded = tf.saved_model.load(str(folder / "export"))
    load = time.perf_counter() - start
    pixels = tf.constant(np.load(folder / "image.npy")[None])
    encoded = tf.constant([(folder / "image.jpg").read_bytes()])
    detect_image, serving = loaded.signatures["detect_image"], loaded.signatures["serving_default"]
    counts = []
    image_times = timed(lambda: counts.append(int(detect_image(image=pixels)["num_detections"][0])),
                        args.warmup, args.runs)
    bytes_times = timed(lambda: serving(images=encoded)["num_detections"].numpy(), args.warmup, args.runs)
    assert not [m for m in sys.modules if m.split(".")[0] in ("mrcnn", "fseg")]
    return {"load_s": load, "detect_image_s": image_times, "serving_default_s": bytes_times,
            "detections": counts[-1]}


def run_child(step: str, folder: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", step, "--folder", str(folder), "--runs", str(args.runs),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"})
    if done.returncode != 0:
        sys.exit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def spread(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} ({min(times):.2f}–{max(times):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", choices=["keras", "savedmodel"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        print(json.dumps((child_keras if args.child == "keras" else child_savedmodel)(args.folder, args)))
        return

    import tensorflow as tf

    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), uptime()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        folder = Path(tmp)
        names = json.dumps(tomllib.loads((REPO / "configs" / "deepfashion2.toml").read_text())["CLASS_NAMES"])
        (folder / "config.toml").write_text(CONFIG + f"CLASS_NAMES = {names}\n")
        run_child("keras", folder, args)  # writes weights.h5 and the image
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fseg", "export", "--weights", str(folder / "weights.h5"),
                               "--config", str(folder / "config.toml"), "--out", str(folder / "export")],
                              capture_output=True, text=True, cwd=REPO)
        export_s = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"fseg export failed:\n{done.stderr[-3000:]}")
        export_mb = sum(p.stat().st_size for p in (folder / "export").rglob("*") if p.is_file()) / 1e6
        h5_mb = (folder / "weights.h5").stat().st_size / 1e6
        keras = run_child("keras", folder, args)
        saved = run_child("savedmodel", folder, args)
    result = {"started": started, "uptime_before": load_before, "uptime_after": uptime(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "tensorflow": tf.__version__,
              "export_s": export_s, "export_mb": export_mb, "h5_mb": h5_mb, "keras": keras, "savedmodel": saved,
              "threads": args.threads, "runs": args.runs, "warmup": args.warmup}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    k, s = keras, saved
    print(f"{started}, {result['machine']}, TensorFlow {tf.__version__}, {args.threads} threads, "
          f"{args.warmup} warm-up + {args.runs} timed calls\n"
          f"load before: {load_before}\nload after:  {result['uptime_after']}\n")
    print("| measure | MaskRCNN (.h5) | SavedModel |\n|---|---|---|")
    print(f"| `fseg export` wall time (TF import, build, load, trace, save) | – | {export_s:.1f} s |")
    print(f"| size on disk | {h5_mb:.1f} MB (.h5) | {export_mb:.1f} MB (folder) |")
    print(f"| ready to run: build + load_weights / tf.saved_model.load | {k['build_load_s']:.1f} s | "
          f"{s['load_s']:.1f} s |")
    print(f"| s/image, 1024×1024, pixels in: detect() / detect_image | {spread(k['detect_s'])} | "
          f"{spread(s['detect_image_s'])} |")
    print(f"| s/image, 1024×1024 JPEG bytes in: serving_default | – | {spread(s['serving_default_s'])} |")
    print(f"| detections per call | {k['detections']} | {s['detections']} |")


if __name__ == "__main__":
    main()
