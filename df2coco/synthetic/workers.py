"""Run chunks of a split in worker processes: ``python -m df2coco.synthetic.workers``.

Workers are fresh interpreters started with :mod:`subprocess`, not
:mod:`multiprocessing`: forking a process whose OpenCV (or TensorFlow) thread
pools have run can deadlock the children, and multiprocessing's "spawn"
re-imports the caller's main script (which fails for stdin scripts and for
scripts without a ``__main__`` guard). Worker ``k`` of ``W`` writes chunks
k, k + W, k + 2W, ... and prints one JSON line per finished chunk:
``{"n": images, "cats": [category ids], "records": [[stem, item or null, quirk], ...]}``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import selectors
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from df2coco.synthetic.files import QuirkRecord, SplitJob, write_chunk

ChunkResult = tuple[int, list[int], list[QuirkRecord]]  # (images, category ids, quirk records)


def chunk_bounds(num_images: int, chunk: int) -> list[tuple[int, int]]:
    """[(first index, stop index)] covering 1..num_images in chunks of ``chunk`` images."""
    return [(s, min(s + chunk, num_images + 1)) for s in range(1, num_images + 1, chunk)]


def _worker_env() -> dict[str, str]:
    """The caller's environment, with this package importable and OpenCV single-threaded."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding df2coco/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _failure(proc: subprocess.Popen, err_file) -> RuntimeError:
    """The error of a failed worker: its last stderr line (the exception, e.g. ``OSError: [Errno 28] ...``)."""
    err_file.seek(0)
    lines = err_file.read().decode(errors="replace").strip().splitlines()
    return RuntimeError(f"synthetic-data worker exited with code {proc.returncode}: {lines[-1] if lines else ''}")


def run_in_workers(job: SplitJob, num_images: int, chunk: int, workers: int,
                   on_chunk: Callable[[ChunkResult], None]) -> None:
    """Write images 1..num_images with ``workers`` processes; call ``on_chunk`` as chunks finish.

    Raises RuntimeError (with the end of the worker's stderr) if a worker fails.
    Workers still running when this returns or raises are killed.
    """
    cmd = [sys.executable, "-m", "df2coco.synthetic.workers", json.dumps(dataclasses.asdict(job)),
           str(num_images), str(chunk), str(workers)]
    procs, errs = [], []
    selector = selectors.DefaultSelector()
    try:
        for k in range(workers):
            err = tempfile.TemporaryFile()
            proc = subprocess.Popen(cmd + [str(k)], stdout=subprocess.PIPE, stderr=err, env=_worker_env())
            procs.append(proc)
            errs.append(err)
            selector.register(proc.stdout, selectors.EVENT_READ, (proc, err))
        open_pipes = workers
        while open_pipes:
            for key, _ in selector.select():
                proc, err = key.data
                line = key.fileobj.readline()
                if line:
                    msg = json.loads(line)
                    on_chunk((msg["n"], msg["cats"], [tuple(r) for r in msg["records"]]))
                    continue
                selector.unregister(key.fileobj)
                open_pipes -= 1
                if proc.wait() != 0:
                    raise _failure(proc, err)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        for err in errs:
            err.close()
        selector.close()


def main(argv: list[str]) -> None:
    """Worker entry point: argv = [job JSON, num_images, chunk, workers, this worker's number]."""
    import cv2

    cv2.setNumThreads(1)  # the parallelism is across worker processes
    job = SplitJob(**json.loads(argv[0]))
    num_images, chunk, workers, k = (int(a) for a in argv[1:5])
    for start, stop in chunk_bounds(num_images, chunk)[k::workers]:
        n, cats, records = write_chunk(job, start, stop)
        sys.stdout.write(json.dumps({"n": n, "cats": cats, "records": records}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except OSError as exc:  # disk full, read-only, ...: one line for the parent's error message
        sys.stderr.write(f"cannot write {exc.filename or 'the split'}: {exc.strerror or exc}\n")
        sys.exit(1)
