"""mrcnn.checkpoints: matterport's log-folder and checkpoint naming, and find_last."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from mrcnn.checkpoints import (
    Checkpoint,
    checkpoint_file_name,
    checkpoint_path,
    find_last,
    log_dir_name,
    parse_checkpoint,
)

START = dt.datetime(2026, 1, 27, 9, 30, 59)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_names_follow_matterport():
    # matterport: "{}{:%Y%m%dT%H%M}".format(NAME.lower(), now) and "mask_rcnn_{}_*epoch*.h5" with epoch:04d
    assert log_dir_name("DeepFashion2", START) == "deepfashion220260127T0930"
    assert checkpoint_file_name("DeepFashion2", 7) == "mask_rcnn_deepfashion2_0007.h5"
    assert checkpoint_file_name("coco", 12345) == "mask_rcnn_coco_12345.h5"
    assert checkpoint_path("logs", "coco", START, 160) == Path("logs/coco20260127T0930/mask_rcnn_coco_0160.h5")


def test_parse_checkpoint_reads_log_dir_and_epoch():
    parsed = parse_checkpoint("/runs/deepfashion220260127T0930/mask_rcnn_deepfashion2_0007.h5")
    assert parsed == Checkpoint(Path("/runs/deepfashion220260127T0930"), 7)
    log_dir, epoch = parsed  # unpacks like matterport's (log_dir, epoch)
    assert epoch == 7 and log_dir.name == "deepfashion220260127T0930"
    assert parse_checkpoint("logs/coco20180405T1200/mask_rcnn_coco_10000.h5").epoch == 10000


def test_parse_checkpoint_round_trips_with_checkpoint_path():
    path = checkpoint_path("logs", "Shapes", START, 42)
    assert parse_checkpoint(path) == Checkpoint(Path("logs/shapes20260127T0930"), 42)
    assert parse_checkpoint(path, name="shapes").epoch == 42


def test_parse_checkpoint_rejects_other_names():
    assert parse_checkpoint("weights/mask_rcnn_coco.h5") is None
    assert parse_checkpoint("logs/coco20180405T1200/mask_rcnn_coco.h5") is None
    assert parse_checkpoint("logs/coco20180405T1200/mask_rcnn_other_0003.h5") is None  # folder/file disagree
    assert parse_checkpoint("logs/coco2018T1200/mask_rcnn_coco_0003.h5") is None  # bad timestamp
    assert parse_checkpoint("logs/coco20180405T1200/mask_rcnn_coco_03.h5") is None  # fewer than 4 digits
    assert parse_checkpoint("logs/coco20180405T1200/mask_rcnn_coco_0003.h5", name="fashion") is None


def test_find_last_picks_newest_run_then_highest_epoch(tmp_path):
    touch(tmp_path / "fashion20260101T1000" / "mask_rcnn_fashion_0050.h5")
    touch(tmp_path / "fashion20260102T0800" / "mask_rcnn_fashion_0002.h5")
    newest = touch(tmp_path / "fashion20260102T0800" / "mask_rcnn_fashion_0010.h5")
    touch(tmp_path / "fashion20260102T0800" / "mask_rcnn_fashion_0009.h5")
    assert find_last(tmp_path, "fashion") == newest
    assert find_last(tmp_path, "FASHION") == newest


def test_find_last_ignores_other_configs_and_stray_files(tmp_path):
    wanted = touch(tmp_path / "fashion20260101T1000" / "mask_rcnn_fashion_0001.h5")
    touch(tmp_path / "fashion_small20270101T1000" / "mask_rcnn_fashion_small_0009.h5")  # shares the prefix
    touch(tmp_path / "fashion20260101T1000" / "mask_rcnn_fashion_0009.h5.tmp")  # an unfinished write
    touch(tmp_path / "fashion20260101T1000" / "mask_rcnn_other_0099.h5")
    touch(tmp_path / "fashion20260101T1000" / "events.out.tfevents")
    touch(tmp_path / "fashion20990101T1000")  # a file, not a run folder
    assert find_last(tmp_path, "fashion") == wanted


def test_find_last_passes_over_a_run_without_checkpoints(tmp_path):
    older = touch(tmp_path / "fashion20260101T1000" / "mask_rcnn_fashion_0003.h5")
    (tmp_path / "fashion20260105T1000").mkdir()  # stopped during its first epoch
    assert find_last(tmp_path, "fashion") == older


def test_find_last_returns_none_when_nothing_fits(tmp_path):
    assert find_last(tmp_path / "missing", "fashion") is None
    assert find_last(tmp_path, "fashion") is None
    touch(tmp_path / "coco20260101T1000" / "mask_rcnn_coco_0001.h5")
    assert find_last(tmp_path, "fashion") is None
