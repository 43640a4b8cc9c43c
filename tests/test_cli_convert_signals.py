"""SIGTERM and SIGINT during `fseg convert` and `fseg synth`, on the real CLI in a subprocess.

Each test starts the command, waits until it is really working (its temporary output exists and, with
worker processes, the workers are running), sends the signal, and checks: exit code 143 (SIGTERM) or 130
(SIGINT), stderr is the one line ``Error: interrupted by ...`` (no traceback, no ``Process
ForkServerProcess-1:`` noise from workers), no temporary file, no worker process left, the earlier
output and the inputs byte-identical. SIGINT is also sent to the whole process group, as a Ctrl-C in a
terminal does, so the workers get it too.

The convert split is slow on purpose: every image's polygon has 3,000 vertices and crosses the image
border, so each image costs milliseconds of clipping; all files are hard links to one image and one
annotation file, so the split costs no time or disk to make.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
IMAGES = 4200  # enough for two workers (the converter starts one per 2,000 images)
TIMEOUT = 60  # seconds to wait for a state before failing the test


def slow_split(root: Path) -> Path:
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    Image.fromarray(np.full((100, 120, 3), 70, np.uint8)).save(root / "image.jpg")
    angles = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
    ring = np.stack([60 + 70 * np.cos(angles), 50 + 40 * np.sin(angles)], axis=1).round(1)  # wider than 120
    polygon = [float(v) for v in np.concatenate([ring, ring[:1]]).ravel()]
    item = {"segmentation": [polygon], "bounding_box": [0, 10, 120, 90], "landmarks": [50, 50, 2] * 8,
            "category_id": 9, "category_name": "skirt", "style": 0, "scale": 3, "occlusion": 1, "zoom_in": 1,
            "viewpoint": 2}
    (root / "anno.json").write_text(json.dumps({"source": "user", "pair_id": 1, "item1": item}))
    for n in range(1, IMAGES + 1):
        os.link(root / "image.jpg", root / "image" / f"{n:06d}.jpg")
        os.link(root / "anno.json", root / "annos" / f"{n:06d}.json")
    return root


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    return slow_split(tmp_path_factory.mktemp("signals") / "split")


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def temporary(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def interrupt(proc: subprocess.Popen, sig: int, group: bool, workers: set[int]) -> str:
    """Send the signal, wait for the exit; returns stderr. Checks that no worker outlives the command."""
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    wait_for(lambda: not any(alive(pid) for pid in workers), "the worker processes to end")
    return stderr


CASES = [(signal.SIGTERM, False, 143), (signal.SIGINT, False, 130), (signal.SIGINT, True, 130)]
IDS = ["SIGTERM", "SIGINT", "SIGINT to the process group"]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("sig, group, code", CASES, ids=IDS)
def test_convert_interrupted(split, tmp_path, workers, sig, group, code):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "out.json").write_text("earlier output")
    before = snapshot(split, out_dir)
    proc = subprocess.Popen([sys.executable, "-m", "fseg", "convert", str(split), "--out", str(out_dir / "out.json"),
                             "--report", str(out_dir / "r.jsonl"), "--force", "--workers", str(workers)],
                            cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: len(temporary(out_dir)) == 3, "the temporary output files")  # output, annotations, report
    if workers > 1:  # the forkserver and the workers
        wait_for(lambda: len(descendants(proc.pid)) >= 1 + workers, "the worker processes")
    time.sleep(0.3)
    workers_seen = descendants(proc.pid)
    stderr = interrupt(proc, sig, group, workers_seen)
    assert proc.returncode == code
    assert stderr.strip() == (f"Error: interrupted by {signal.Signals(sig).name}; "
                              "no output written; existing files unchanged"), stderr
    assert temporary(out_dir) == []
    assert snapshot(split, out_dir) == before


@pytest.mark.parametrize("sig, group, code", CASES, ids=IDS)
def test_synth_interrupted(tmp_path, sig, group, code):
    out = tmp_path / "synth"
    (out / "image").mkdir(parents=True)
    (out / "image" / "000001.jpg").write_bytes(b"earlier split")
    before = snapshot(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "fseg", "synth", str(out), "--images", "3000", "--workers", "2",
                             "--force", "--min-side", "400", "--max-side", "640"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def some_images_written() -> bool:
        tmp_dirs = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
        return bool(tmp_dirs) and len(list((tmp_dirs[0] / "image").glob("*.jpg"))) >= 4

    wait_for(some_images_written, "the first generated images")
    workers_seen = descendants(proc.pid)
    assert len(workers_seen) >= 2
    stderr = interrupt(proc, sig, group, workers_seen)
    assert proc.returncode == code
    assert stderr.strip() == (f"Error: interrupted by {signal.Signals(sig).name}; "
                              f"{out} not written; an existing synth is unchanged"), stderr
    assert temporary(tmp_path) == []
    assert snapshot(tmp_path) == before
