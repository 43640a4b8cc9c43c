#!/usr/bin/env python3
"""``fseg predict`` over many images: peak memory against image count, and kill -9 + ``--resume``.

Issue 12's check that results stream to disk: peak RSS over N images must stay within 10 % of the
peak over N/10 images; a run killed with SIGKILL half way and continued with ``--resume`` must
write the same ``predictions.json`` as an uninterrupted run.

Steps (each ``fseg predict`` is a fresh process; peak RSS from ``os.wait4``):
  1. ``fseg synth`` N images (160-320 px, seed 3) into the cache folder, once.
  2. ``fseg predict`` over the first N/10 of them (a folder of hard links) -> peak RSS.
  3. ``fseg predict`` over all N -> peak RSS, wall time, predictions.json (the reference).
  4. ``fseg predict`` over all N into a new folder, SIGKILL once the journal holds N/2 images,
     then ``fseg predict --resume`` -> its predictions.json must equal step 3's (records and order).

The model is a checkpoint given with --weights/--config (e.g. the one ``fseg demo`` trained: real
detections), or by default a random-weight model of configs/synthetic.toml saved here.
``--no-overlay`` in every run: the overlays are per-image files, not what this measures.

Usage:
  python scripts/bench_predict_scale.py [--images 5000] [--weights FILE --config FILE] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOURNAL = ".predict-journal"


def run(command: list[str], kill_at_journal_lines: int | None = None, journal: Path | None = None) -> dict:
    """Runs ``command``; returns wall seconds, peak RSS (MiB), exit status; optionally SIGKILLs it once
    ``journal`` has ``kill_at_journal_lines`` lines."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = False
    if kill_at_journal_lines is not None:
        while process.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= kill_at_journal_lines:
                process.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and not killed:
        sys.exit(f"{' '.join(command)} failed ({code}):\n{stderr[-2000:]}")
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": usage.ru_maxrss / 1024, "exit": code,
            "killed": killed}


def predict(images: Path, out: Path, model_args: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "fseg", "predict", str(images), "--out", str(out), "--no-overlay",
            *model_args, *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fseg" / "bench")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fseg_bench_predict_scale"))
    args = parser.parse_args()
    split = args.cache / f"predict_scale_{args.images}_s3"
    if not split.exists():
        subprocess.run([sys.executable, "-m", "fseg", "synth", str(split), "--images", str(args.images),
                        "--seed", "3", "--min-side", "160", "--max-side", "320"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    if args.weights is None:  # a random-weight model of the synthetic config
        sys.path.insert(0, str(REPO))
        from mrcnn.config import load_config
        from mrcnn.model import MaskRCNN

        args.config = REPO / "configs" / "synthetic.toml"
        args.weights = args.work / "random.h5"
        MaskRCNN("inference", load_config(args.config), str(args.work)).save_weights(str(args.weights))
    model_args = ["--weights", str(args.weights), "--config", str(args.config)]

    small = args.work / "small_split"
    small.mkdir()
    for path in sorted((split / "image").iterdir())[:args.images // 10]:
        os.link(path, small / path.name)
    load_before = os.getloadavg()
    result = {"images": args.images, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "load_before": load_before}
    result["small"] = run(predict(small, args.work / "out_small", model_args))
    result["full"] = run(predict(split / "image", args.work / "out_full", model_args))
    resumed_out = args.work / "out_resumed"
    result["killed"] = run(predict(split / "image", resumed_out, model_args),
                           kill_at_journal_lines=args.images // 2, journal=resumed_out / JOURNAL)
    done_before = (resumed_out / JOURNAL).read_bytes().count(b"\n")
    result["resumed"] = run(predict(split / "image", resumed_out, model_args, "--resume"))
    result["resumed"]["journal_lines_at_kill"] = done_before
    reference = json.loads((args.work / "out_full" / "predictions.json").read_text())
    resumed = json.loads((resumed_out / "predictions.json").read_text())
    result["predictions_equal"] = reference == resumed
    result["records"] = len(reference)
    result["rss_ratio_full_to_small"] = result["full"]["peak_rss_mib"] / result["small"]["peak_rss_mib"]
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
