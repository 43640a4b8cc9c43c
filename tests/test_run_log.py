"""mrcnn.train.run_log: checkpoints, CSV rows and TensorBoard steps agree after any crash.

The run folders here are built by hand in the states a crash can leave (the recorder writes checkpoint,
then row, then step): a checkpoint whose row and step are missing, a row whose checkpoint is gone, a cut
CSV line, a dead process's temporary file. ``scripts/kill_train.py`` checks the same with real kill -9s.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from mrcnn.io.h5_legacy import read_notes, write_legacy_h5
from mrcnn.train.run_log import CSV_FILE, RECORD_NOTE, RunLog

NAME = "runlog"
LOSSES = ["rpn_class_loss", "mrcnn_mask_loss"]


def row(epoch, status="ok"):
    return {"epoch": epoch, "status": status, "layers": "heads", "loss": 1.0 / epoch, "rpn_class_loss": 0.5,
            "mrcnn_mask_loss": 0.25, "val_loss": 2.0 / epoch, "learning_rate": 0.01, "seconds": 3.5}


def checkpoint(folder, epoch):
    """A (one-layer) checkpoint carrying its epoch's row, as EpochRecorder writes it."""
    write_legacy_h5(folder / f"mask_rcnn_{NAME}_{epoch:04d}.h5", [("conv1", [("conv1/kernel:0", np.ones((1, 1)))])],
                    notes={RECORD_NOTE: row(epoch)})


def csv_rows(folder):
    with (folder / CSV_FILE).open(newline="") as f:
        return list(csv.DictReader(f))


def test_each_epoch_is_recorded_and_read_back(tmp_path):
    run_log = RunLog(tmp_path, NAME, LOSSES)
    for epoch in (1, 2):
        checkpoint(tmp_path, epoch)
        run_log.append_row(row(epoch))
        run_log.write_tensorboard(row(epoch))
    run_log.close()
    rows = csv_rows(tmp_path)
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["loss"] == "0.5"
    assert list(rows[0])[:4] == ["epoch", "status", "layers", "loss"]
    assert run_log.tensorboard_steps() == {1, 2}
    assert read_notes(tmp_path / f"mask_rcnn_{NAME}_0002.h5")[RECORD_NOTE]["val_loss"] == 1.0
    assert run_log.reconcile() == {"rows_added": [], "rows_dropped": [], "steps_added": [],
                                   "temporary_files_removed": []}


def test_a_checkpoint_without_row_or_step_gets_them_back(tmp_path):
    """Killed after the checkpoint's rename, before its row and step."""
    run_log = RunLog(tmp_path, NAME, LOSSES)
    checkpoint(tmp_path, 1)
    run_log.append_row(row(1))
    run_log.write_tensorboard(row(1))
    checkpoint(tmp_path, 2)
    done = run_log.reconcile()
    run_log.close()
    assert done["rows_added"] == [2] and done["steps_added"] == [2]
    assert [r["epoch"] for r in csv_rows(tmp_path)] == ["1", "2"]
    assert float(csv_rows(tmp_path)[1]["loss"]) == pytest.approx(0.5)
    assert run_log.tensorboard_steps() == {1, 2}


def test_rows_without_checkpoint_are_dropped_and_nan_rows_kept(tmp_path):
    run_log = RunLog(tmp_path, NAME, LOSSES)
    checkpoint(tmp_path, 1)
    for r in (row(1), row(2), row(3, status="nan")):  # epoch 2's checkpoint never made it
        run_log.append_row(r)
    done = run_log.reconcile()
    run_log.close()
    assert done["rows_dropped"] == [2]
    assert [(r["epoch"], r["status"]) for r in csv_rows(tmp_path)] == [("1", "ok"), ("3", "nan")]


def test_a_cut_last_line_and_dead_temporary_files_are_cleaned(tmp_path):
    run_log = RunLog(tmp_path, NAME, LOSSES)
    checkpoint(tmp_path, 1)
    run_log.append_row(row(1))
    with (tmp_path / CSV_FILE).open("a") as f:
        f.write("2,ok,hea")  # what an old appending writer left when killed
    dead = tmp_path / f".mask_rcnn_{NAME}_0002.h5.999999999.abcdef12.tmp"
    dead.write_bytes(b"half a checkpoint")
    alive = tmp_path / f".mask_rcnn_{NAME}_0002.h5.{os.getpid()}.abcdef12.tmp"  # ours: still being written
    alive.write_bytes(b"")
    impossible = tmp_path / ".x.99999999999999999999.ab.tmp"  # no process can have this id (os.kill overflows)
    impossible.write_bytes(b"")
    done = run_log.reconcile()
    run_log.close()
    assert done["temporary_files_removed"] == [dead.name] and alive.exists() and not dead.exists()
    assert impossible.exists()  # an unknown process id is left alone, on the safe side
    assert [r["epoch"] for r in csv_rows(tmp_path)] == ["1"]


def test_mrcnn_and_df2coco_name_temporary_files_alike_and_agree_on_dead_writers(tmp_path):
    # The two packages may not import each other, so each has its copy of the rule; this keeps them equal.
    import tempfile

    from df2coco import leftovers
    from mrcnn.io import files

    target = tmp_path / "out.json"
    ours = files.temporary_sibling(target)
    fd, theirs = tempfile.mkstemp(dir=tmp_path, prefix=leftovers.temporary_file_prefix(target), suffix=".tmp")
    os.close(fd)
    for name in (ours.name, Path(theirs).name):
        match = files.TEMPORARY_NAME.fullmatch(name)
        assert match and match.group("name") == "out.json" and int(match.group("pid")) == os.getpid(), name
    for pid in (os.getpid(), 1, 999999999, 10 ** 20):
        assert files.process_alive(pid) == leftovers.process_alive(pid), pid
    dead = tmp_path / ".out.json.999999999.k2j_x9.tmp"  # a dead df2coco writer's name
    dead.write_bytes(b"")
    Path(theirs).unlink()
    assert files.remove_dead_temporary_files(tmp_path) == [dead.name]
    dead.write_bytes(b"")
    assert leftovers.remove_dead_temporary_files(target) == [dead]
