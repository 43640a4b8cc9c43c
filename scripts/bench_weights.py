#!/usr/bin/env python3
"""Time mrcnn.io.weights on a full-size matterport file (257 MB, resnet101, 81 classes).

Builds a file with the released mask_rcnn_coco.h5 layout (from
../shared/reference/matterport_h5/) filled with seeded random values in a temp
folder, then times, best of --repeat runs:
  raw read     h5py reading every dataset into NumPy (the floor for any loader)
  inspect      inspect_weights (names and shapes only)
  read         read_weights (every array into memory)
  load         load_weights into MaskRCNN(mode="inference") by name
  save         save_weights of that model
The file is read from the OS page cache (it was just written): these are CPU costs,
not disk speed.

Usage:
  python scripts/bench_weights.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LAYOUT = REPO.parent / "shared" / "reference" / "matterport_h5" / "mask_rcnn_coco_v2.0_training_layout.json"


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_read(path) -> None:
    import h5py

    def read(_, obj):
        if isinstance(obj, h5py.Dataset):
            obj[()]
        # returning None keeps visititems going

    with h5py.File(path, "r") as h5:
        h5.visititems(read)


def small_config():
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 81
        IMAGES_PER_GPU = 1
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128

    return BenchConfig()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()

    import numpy as np

    from mrcnn.model import MaskRCNN
    from mrcnn.io.weights_inspect import inspect_weights
    from mrcnn.io.weights import load_weights, save_weights
    from mrcnn.io.h5_legacy import read_weights, write_legacy_h5

    rng = np.random.default_rng(0)
    layers = [(e["name"], [(w, rng.standard_normal(s, dtype=np.float32)) for w, s in e["weights"]])
              for e in json.loads(LAYOUT.read_text())]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mask_rcnn_coco_layout.h5"
        write_legacy_h5(path, layers)
        del layers
        model = MaskRCNN(mode="inference", config=small_config(), model_dir=tmp)
        results = {
            "raw h5py read": best_time(lambda: raw_read(path), args.repeat),
            "inspect_weights": best_time(lambda: inspect_weights(path), args.repeat),
            "read_weights": best_time(lambda: read_weights(path), args.repeat),
            "load_weights": best_time(lambda: load_weights(model.keras_model, path), args.repeat),
            "save_weights": best_time(lambda: save_weights(model.keras_model, Path(tmp) / "out.h5"),
                                      args.repeat),
        }
        size_mb = path.stat().st_size / 1e6
    print(f"file: {size_mb:.1f} MB, best of {args.repeat}")
    for name, seconds in results.items():
        ratio = seconds / results["raw h5py read"]
        print(f"  {name:16s} {seconds:6.3f} s   {ratio:4.2f}x raw read")


if __name__ == "__main__":
    main()
