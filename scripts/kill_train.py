#!/usr/bin/env python3
"""kill -9 at random moments of a short `fseg train`, then check that checkpoints, CSV rows and TensorBoard
steps agree (issue 9: "always resumes with checkpoints, CSV rows and TensorBoard steps agreeing").

    python3 scripts/kill_train.py [--kills 20] [--epochs 60] [--work /tmp/fseg_kill_train] [--seed 0]

Each round starts `fseg train` (round 1 from random weights, then `--weights last`), waits until that run has
written a checkpoint of its own (so it is past start-up), then a random 0-0.8 s (up to about three epochs of
the tiny config: steps, checkpoint writes, CSV and TensorBoard writes) and sends SIGKILL. After every kill the
run folder is repaired as the next run's start repairs it (``RunLog.reconcile``) and checked: the epochs that
have a checkpoint, the epochs with an "ok"/"partial" CSV row and the TensorBoard steps must be the same set. A
last uninterrupted run completes the epochs, and the final folder must hold epochs 1..E exactly once each.
Prints a JSON summary (kills, where they landed, repairs made); record it in docs/usage_train.md.
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASS_NAMES = ["BG", "short sleeve top", "long sleeve top", "short sleeve outwear", "long sleeve outwear",
               "vest", "sling", "shorts", "trousers", "skirt", "short sleeve dress", "long sleeve dress",
               "vest dress", "sling dress"]
CONFIG = {"NAME": "killtest", "NUM_CLASSES": 14, "CLASS_NAMES": CLASS_NAMES, "BACKBONE": "resnet18_half",
          "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64, "IMAGES_PER_GPU": 2, "TOP_DOWN_PYRAMID_SIZE": 16,
          "FPN_CLASSIF_FC_LAYERS_SIZE": 16, "TRAIN_ROIS_PER_IMAGE": 16, "POST_NMS_ROIS_TRAINING": 64,
          "PRE_NMS_LIMIT": 300, "MAX_GT_INSTANCES": 5, "MINI_MASK_SHAPE": [14, 14],
          "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128], "STEPS_PER_EPOCH": 3, "VALIDATION_STEPS": 1, "TRAIN_BN": True}


def prepare(work: Path) -> tuple[Path, Path, Path]:
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split

    if not (work / "train.json").exists():
        generate_split(work / "split", 12, seed=5, min_side=64, max_side=96, workers=1)
        convert_split(work / "split", work / "train.json", workers=1)
    config = work / "killtest.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in CONFIG.items()))
    return work / "train.json", work / "split" / "image", config


def agreement(run_dir: Path) -> dict:
    """Repair the folder as a resuming run does, then compare the three records."""
    from mrcnn.train.run_log import STATUS_NAN, RunLog

    run_log = RunLog(run_dir, CONFIG["NAME"], [])
    repairs = run_log.reconcile()
    run_log.close()
    checkpoints = set(run_log.checkpoint_epochs())
    rows = [int(r["epoch"]) for r in run_log.read_rows() if r.get("status") != STATUS_NAN]
    steps = run_log.tensorboard_steps()
    return {"checkpoints": sorted(checkpoints), "rows": sorted(rows), "steps": sorted(steps), "repairs": repairs,
            "agree": checkpoints == set(rows) == steps and len(rows) == len(set(rows))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--work", type=Path, default=Path("/tmp/fseg_kill_train"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    annotations, images, config = prepare(args.work)
    logs = args.work / "logs"
    base = [sys.executable, "-m", "fseg", "train", "--annotations", str(annotations), "--images", str(images),
            "--config", str(config), "--logs", str(logs), "--layers", "heads", "--epochs", str(args.epochs),
            "--seed", "0"]
    rounds, failures = [], 0
    for k in range(args.kills):
        weights = "none" if not logs.exists() or not any(logs.iterdir()) else "last"
        started = time.monotonic()
        process = subprocess.Popen(base + ["--weights", weights], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        # Wait until this run has written a checkpoint of its own (it is training, past start-up), then a
        # random extra time of up to a few epochs: the kill lands in a step, a checkpoint write or the logs.
        before = len(list(logs.glob("killtest*/*.h5")))
        while process.poll() is None and len(list(logs.glob("killtest*/*.h5"))) <= before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        during_write = bool(list(logs.glob("killtest*/.*.tmp")))
        process.send_signal(signal.SIGKILL)
        process.wait()
        (run_dir,) = [p for p in logs.iterdir() if p.is_dir()]
        state = agreement(run_dir)
        failures += not state["agree"]
        rounds.append({"round": k + 1, "seconds": round(time.monotonic() - started, 1),
                       "killed_during_checkpoint_write": during_write, **state})
        print(json.dumps(rounds[-1]), flush=True)
        if state["checkpoints"] and max(state["checkpoints"]) >= args.epochs:
            break
    final = subprocess.run(base + ["--weights", "last"], cwd=REPO, capture_output=True, text=True)
    (run_dir,) = [p for p in logs.iterdir() if p.is_dir()]
    last = agreement(run_dir)
    complete = last["checkpoints"] == list(range(1, args.epochs + 1)) and last["agree"]
    summary = {"kills": len(rounds), "kills_during_checkpoint_writes": sum(r["killed_during_checkpoint_write"]
                                                                           for r in rounds),
               "rounds_with_repairs": sum(bool(any(r["repairs"].values())) for r in rounds),
               "disagreements": failures, "final_exit_code": final.returncode, "final": last,
               "complete_and_agreeing": complete}
    print(json.dumps(summary, indent=1))
    return 0 if complete and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
