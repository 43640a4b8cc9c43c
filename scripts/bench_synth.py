"""Benchmark of the synthetic DeepFashion2 generator (`fseg synth`).

Times ``generate_split`` on N images (default 20,000, sides 160-640 px) with 1 worker
on a sample and with all requested workers on the whole split, and prints wall
time, images/s, CPU time per image (user + system, of all processes: meaningful
even on a busy machine), the parallel speed-up and the size on disk. Also reports
the load average, since wall times are only meaningful on an idle box.

    python3 scripts/bench_synth.py                       # 20,000 images, 2 workers
    python3 scripts/bench_synth.py --images 2000 --workers 2 --keep /tmp/synth2k
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from df2coco.synthetic import generate_split  # noqa: E402


def _disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(out: Path, n: int, workers: int, seed: int) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, summary) of one generate_split run."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    summary = generate_split(out, n, seed=seed, workers=workers, progress=True)
    return time.perf_counter() - start, _cpu_seconds() - cpu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", type=int, default=1000, help="images for the 1-worker timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the full split here instead of deleting it")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="bench_synth-") as tmp:
        t1, cpu1, _ = _timed(Path(tmp) / "one", args.sample, 1, args.seed)
        rate1 = args.sample / t1
        print(f"1 worker : {args.sample} images in {t1:.1f} s = {rate1:.1f} img/s; "
              f"CPU {1000 * cpu1 / args.sample:.1f} ms/img")
        out = args.keep or Path(tmp) / "all"
        if args.keep and args.keep.exists():
            shutil.rmtree(args.keep)
        tn, cpun, summary = _timed(out, args.images, args.workers, args.seed)
        rate = args.images / tn
        size = _disk_bytes(out)
    print(f"{args.workers} workers: {args.images} images ({summary.num_items} items) in {tn:.1f} s "
          f"= {rate:.1f} img/s; CPU {1000 * cpun / args.images:.1f} ms/img; speed-up over 1 worker "
          f"{rate / rate1:.2f}x; {size / 2**20:.0f} MiB on disk")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
