"""Faults of issue 9 through the CLI (`fseg convert`, `fseg stats`, `fseg synth`): for each, the one-line
message, the exit code, no temporary file left, earlier outputs and the inputs byte-identical.

Disk-full, read-only and permission faults are injected (a writer whose writes fail, a patched
``mkstemp``/``os.replace``), except where a real OS error is cheap to get: ``RLIMIT_FSIZE`` in a
subprocess makes every write past the limit fail with EFBIG, and ``/dev/full`` fails with ENOSPC.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fseg.cli import cli

REPO = Path(__file__).resolve().parents[1]
SKIRT = {"segmentation": [[10, 10, 40, 10, 40, 40, 10, 40, 10, 10]], "bounding_box": [10, 10, 40, 40],
         "landmarks": [12, 12, 2] * 8, "category_id": 9, "category_name": "skirt", "style": 0, "scale": 1,
         "occlusion": 1, "zoom_in": 1, "viewpoint": 2}


def make_split(root: Path, n: int = 3, **item_overrides) -> Path:
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    for i in range(1, n + 1):
        Image.fromarray(np.full((50, 60, 3), 80, np.uint8)).save(root / "image" / f"{i:06d}.jpg")
        (root / "annos" / f"{i:06d}.json").write_text(
            json.dumps({"source": "user", "pair_id": i, "item1": SKIRT | item_overrides}))
    return root


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under the folders (hidden ones too), by path."""
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(*folders: Path) -> list[str]:
    """Temporary files and folders (``.NAME.*.tmp``, ``.NAME.tmp-*``) under the folders."""
    return [str(p) for folder in folders for p in folder.rglob(".*") if ".tmp" in p.name]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, exit_code: int, message: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"Error: {message}", lines
    assert "Traceback" not in result.output


@pytest.fixture
def setup(tmp_path):
    """A split, an output folder holding an earlier output, and snapshots of both."""
    split = make_split(tmp_path / "split", 20)  # output: 24 KB of header, then 2 KB per image
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "out.json").write_text('{"earlier": "output"}')
    (out_dir / "out.jsonl").write_text("earlier report\n")
    return split, out_dir, snapshot(split, out_dir)


def assert_untouched(split: Path, out_dir: Path, before: dict) -> None:
    assert leftovers(split, out_dir) == []
    assert snapshot(split, out_dir) == before


# ---- full disk ----------------------------------------------------------------------------------------

class FullDisk:
    """Wraps a text file: writes fail with ENOSPC once ``budget`` characters are used; closing fails too
    when ``fail_close`` (after closing for real, as a buffered file whose last flush fails)."""

    def __init__(self, real, budget: int, fail_close: bool):
        self.real, self.budget, self.fail_close = real, budget, fail_close

    def write(self, text: str) -> int:
        self.budget -= len(text)
        if self.budget < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real.write(text)

    def close(self) -> None:
        self.real.close()
        if self.fail_close:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.real, name)


def fill_disk(monkeypatch, budget: int, fail_close: bool, only: str | None = None) -> None:
    """Make the converter's output files (or only those whose path contains ``only``) hit a full disk."""
    import df2coco.writer

    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        real = real_fdopen(fd, *args, **kwargs)
        if only is not None and only not in os.readlink(f"/proc/self/fd/{fd}"):
            return real
        return FullDisk(real, budget, fail_close)

    monkeypatch.setattr(df2coco.writer.os, "fdopen", fdopen)


@pytest.mark.parametrize("budget, fail_close", [(30_000, False), (10**9, True), (30_000, True), (0, False)],
                         ids=["write fails", "close fails", "both fail", "header write fails"])
def test_convert_on_a_full_disk(setup, monkeypatch, budget, fail_close):
    split, out_dir, before = setup
    fill_disk(monkeypatch, budget, fail_close)
    result = run("convert", split, "--out", out_dir / "out.json", "--report", out_dir / "out.jsonl", "--force")
    assert_one_line_error(result, 1, f"cannot write {out_dir / 'out.json'}: No space left on device")
    assert_untouched(split, out_dir, before)


def test_convert_on_a_full_disk_while_writing_the_report(setup, monkeypatch):
    split, out_dir, before = setup
    fill_disk(monkeypatch, 0, False, only="out.jsonl")
    result = run("convert", split, "--out", out_dir / "out.json", "--report", out_dir / "out.jsonl", "--force",
                 "--strict", "--limit", 1, "--workers", 1)
    assert result.exit_code == 0  # no problem, nothing to write: an empty report replaces the earlier one
    before = snapshot(out_dir)
    result = run("convert", make_split(split.parent / "bad", 2, category_id=99), "--out", out_dir / "out.json",
                 "--report", out_dir / "out.jsonl", "--force")
    assert_one_line_error(result, 1, f"cannot write {out_dir / 'out.jsonl'}: No space left on device")
    assert snapshot(out_dir) == before  # the first run's output and report
    assert leftovers(split.parent) == []


def test_convert_rename_fails(setup, monkeypatch):
    import df2coco.writer

    split, out_dir, before = setup

    def replace(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))

    monkeypatch.setattr(df2coco.writer.os, "replace", replace)
    result = run("convert", split, "--out", out_dir / "out.json", "--force")
    assert_one_line_error(result, 1, f"cannot write {out_dir / 'out.json'}: Permission denied")
    assert_untouched(split, out_dir, before)


def _limited_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_convert_real_write_error_in_a_subprocess(setup):
    """RLIMIT_FSIZE = 8 KiB: the kernel refuses the write past it (EFBIG), as a full disk would (ENOSPC)."""
    split, out_dir, before = setup
    proc = subprocess.run([sys.executable, "-m", "fseg", "convert", split, "--out", out_dir / "out.json", "--force"],
                          cwd=REPO, capture_output=True, text=True, preexec_fn=_limited_file_size(8192))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: cannot write {out_dir / 'out.json'}: File too large"
    assert_untouched(split, out_dir, before)


# ---- read-only or forbidden output folders: refused before any work -----------------------------------

@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("which", ["out", "report"])
def test_convert_unwritable_output_folder_is_refused_before_work(setup, monkeypatch, code, which):
    import df2coco.worker
    import df2coco.writer

    split, out_dir, before = setup
    target = out_dir / ("out.json" if which == "out" else "out.jsonl")
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, prefix="", **kwargs):
        if prefix.startswith(f".{target.name}."):
            raise OSError(code, os.strerror(code), str(target.parent / prefix))
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    def no_work(*args):
        raise AssertionError("an image was read before the output folder was checked")

    monkeypatch.setattr(df2coco.writer.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(df2coco.worker, "convert_image", no_work)
    result = run("convert", split, "--out", out_dir / "out.json", "--report", out_dir / "out.jsonl", "--force")
    assert_one_line_error(result, 2, f"cannot write to {out_dir}: {os.strerror(code)}")
    assert_untouched(split, out_dir, before)


@pytest.mark.parametrize("inside", ["annos", "image", "."])
def test_convert_refuses_an_output_inside_the_split(setup, inside):
    split, out_dir, before = setup
    target = (split / inside / "val.json").resolve()
    result = run("convert", split, "--out", target)
    assert_one_line_error(result, 2, f"{target} is inside the split folder {split.resolve()}: write it elsewhere")
    result = run("convert", split, "--out", out_dir / "new.json", "--report", target)
    assert result.exit_code == 2 and "inside the split folder" in result.stderr
    assert_untouched(split, out_dir, before)


def test_convert_unlistable_image_folder(setup, monkeypatch):
    import df2coco.listing

    split, out_dir, before = setup

    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == split / "image":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_scandir(path)

    monkeypatch.setattr(df2coco.listing.os, "scandir", scandir)
    result = run("convert", split, "--out", out_dir / "out.json", "--force")
    assert_one_line_error(result, 2, f"cannot list {split / 'image'}: Permission denied")
    monkeypatch.undo()
    assert_untouched(split, out_dir, before)


# ---- data faults through the CLI: duplicates, noise, truncated images ---------------------------------

def test_duplicate_numbers_are_reported_and_fail_strict(setup):
    split, out_dir, _ = setup
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(split / "image" / "000002.png")
    (split / "annos" / "3.json").write_text("{}")
    before = snapshot(split, out_dir)
    result = run("convert", split, "--out", out_dir / "out.json", "--force", "--strict")
    assert_one_line_error(result, 1, "2 problem(s) found; --strict: no output written")
    assert "duplicate_number" in result.stderr
    assert_untouched(split, out_dir, before)
    result = run("convert", split, "--out", out_dir / "new.json")
    assert result.exit_code == 0 and "duplicate_number  ignored" in result.stderr


def test_one_pixel_noise_passes_strict_and_is_counted(setup):
    split, out_dir, before = setup
    noisy = make_split(split.parent / "noisy", 2, segmentation=[[-0.78, 10, 40, 10, 40, 40.9, -0.78, 10]])
    result = run("convert", noisy, "--out", out_dir / "new.json", "--strict")
    assert result.exit_code == 0, result.output
    assert "No problems found." in result.stderr
    assert "2 item(s) with coordinates at most 1 px outside the image" in result.stderr
    far = make_split(split.parent / "far", 2, segmentation=[[-1.5, 10, 40, 10, 40, 40, -1.5, 10]])
    result = run("convert", far, "--out", out_dir / "far.json", "--strict")
    assert_one_line_error(result, 1, "2 problem(s) found; --strict: no output written")
    assert_untouched(split, out_dir, before | {str(out_dir / "new.json"): (out_dir / "new.json").read_bytes()})


def test_verify_images_through_the_cli(setup):
    split, out_dir, _ = setup
    jpeg = (split / "image" / "000002.jpg").read_bytes()
    (split / "image" / "000002.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    before = snapshot(split, out_dir)
    assert run("convert", split, "--out", out_dir / "quick.json").exit_code == 0
    result = run("convert", split, "--out", out_dir / "full.json", "--verify-images", "--strict")
    assert_one_line_error(result, 1, "1 problem(s) found; --strict: no output written")
    assert "unreadable_image" in result.stderr
    result = run("convert", split, "--out", out_dir / "full.json", "--verify-images")
    assert result.exit_code == 0 and len(json.loads((out_dir / "full.json").read_text())["images"]) == 19
    assert snapshot(split) == {k: v for k, v in before.items() if k.startswith(str(split))}


# ---- fseg stats --------------------------------------------------------------------------------------

def test_stats_to_a_full_disk(setup):
    split, out_dir, _ = setup
    assert run("convert", split, "--out", out_dir / "new.json").exit_code == 0
    with open("/dev/full", "w") as full:  # every write fails with ENOSPC
        proc = subprocess.run([sys.executable, "-m", "fseg", "stats", out_dir / "new.json"], cwd=REPO,
                              stdout=full, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: cannot write the statistics to standard output: No space left on device"


@pytest.mark.parametrize("target, message", [
    ("folder", "Invalid value for 'COCO_FILE': File '{path}' is a directory."),  # click's usage error
    ("missing.json", "cannot read {path}: No such file or directory"),
])
def test_stats_unreadable_input(setup, target, message):
    _, out_dir, before = setup
    path = out_dir / target
    if target == "folder":
        path.mkdir()
    result = run("stats", path)
    assert_one_line_error(result, 2, message.format(path=path))
    assert leftovers(out_dir) == []


# ---- fseg synth --------------------------------------------------------------------------------------

@pytest.fixture
def old_split(tmp_path):
    old = make_split(tmp_path / "synth", 2)
    return old, snapshot(tmp_path)


def test_synth_unwritable_parent_is_refused_before_work(old_split, monkeypatch, tmp_path):
    old, before = old_split

    def mkdtemp(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / ".synth.tmp-x"))

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    result = run("synth", old, "--images", 2, "--force", "--workers", 1)
    assert_one_line_error(result, 2, f"cannot write to {tmp_path}: Read-only file system")
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []


def test_synth_on_a_full_disk_in_process(old_split, monkeypatch, tmp_path):
    old, before = old_split
    real_write_bytes = Path.write_bytes

    def write_bytes(self, data):
        if self.name == "000002.jpg" and ".tmp-" in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    result = run("synth", old, "--images", 3, "--force", "--workers", 1, "--min-side", 64, "--max-side", 80)
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: cannot write {tmp_path}/.synth.tmp-") and last.endswith(
        "/image/000002.jpg: No space left on device")
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []


def test_synth_real_write_error_in_worker_processes(old_split, tmp_path):
    old, before = old_split
    proc = subprocess.run([sys.executable, "-m", "fseg", "synth", old, "--images", "40", "--force", "--workers", "2",
                           "--min-side", "300", "--max-side", "400"], cwd=REPO, capture_output=True, text=True,
                          preexec_fn=_limited_file_size(4096))
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line == "Error: synthetic-data worker exited with code 1: cannot write the split: File too large"
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []
