"""mrcnn.train.checkpoints: run folders (to the second, never shared), matterport's checkpoint naming, find_last."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from conftest import REPO

from mrcnn.train.checkpoints import (Checkpoint, checkpoint_file_name, checkpoint_path, create_run_dir, find_last,
                                    log_dir_name, parse_checkpoint, run_config_for, write_run_config)

START = dt.datetime(2026, 1, 27, 9, 30, 59)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_names_follow_matterport_with_seconds():
    # matterport: "{}{:%Y%m%dT%H%M}".format(NAME.lower(), now) and "mask_rcnn_{}_*epoch*.h5" with epoch:04d;
    # ours adds the seconds (and a suffix for a second run in the same second).
    assert log_dir_name("DeepFashion2", START) == "deepfashion220260127T093059"
    assert log_dir_name("DeepFashion2", START, 3) == "deepfashion220260127T093059_3"
    assert checkpoint_file_name("DeepFashion2", 7) == "mask_rcnn_deepfashion2_0007.h5"
    assert checkpoint_file_name("coco", 12345) == "mask_rcnn_coco_12345.h5"
    assert checkpoint_path("logs", "coco", START, 160) == Path("logs/coco20260127T093059/mask_rcnn_coco_0160.h5")


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path):
    first = create_run_dir(tmp_path, "fashion", START)
    second = create_run_dir(tmp_path, "fashion", START)
    third = create_run_dir(tmp_path, "fashion", START)
    assert (first.name, second.name, third.name) == (
        "fashion20260127T093059", "fashion20260127T093059_2", "fashion20260127T093059_3")
    assert all(p.is_dir() for p in (first, second, third))


def test_find_last_orders_same_second_runs_by_suffix_and_reads_matterport_minutes(tmp_path):
    touch(tmp_path / "fashion20260127T0930" / "mask_rcnn_fashion_0009.h5")  # matterport's, 09:30
    touch(tmp_path / "fashion20260127T093059_2" / "mask_rcnn_fashion_0001.h5")
    newest = touch(tmp_path / "fashion20260127T093059_10" / "mask_rcnn_fashion_0001.h5")  # not "_2" < "_10"
    assert find_last(tmp_path, "fashion") == newest
    assert parse_checkpoint(newest) == Checkpoint(newest.parent, 1)


def test_a_run_folder_records_its_config(tmp_path):
    from mrcnn.config import load_config

    config = load_config(REPO / "configs" / "synthetic.toml")
    run = create_run_dir(tmp_path, config.NAME, START)
    write_run_config(run, config)
    checkpoint = touch(run / checkpoint_file_name(config.NAME, 1))
    assert run_config_for(checkpoint) == run / "config.toml"
    again = load_config(run_config_for(checkpoint))
    assert again.to_json() == config.to_json()  # every setting, derived ones included, round-trips
    assert "Configurations:" in (run / "config.txt").read_text()
    assert run_config_for(tmp_path / "elsewhere" / "w.h5") is None


def test_parse_checkpoint_reads_log_dir_and_epoch():
    parsed = parse_checkpoint("/runs/deepfashion220260127T0930/mask_rcnn_deepfashion2_0007.h5")
    assert parsed == Checkpoint(Path("/runs/deepfashion220260127T0930"), 7)
    log_dir, epoch = parsed  # unpacks like matterport's (log_dir, epoch)
    assert epoch == 7 and log_dir.name == "deepfashion220260127T0930"
    assert parse_checkpoint("logs/coco20180405T1200/mask_rcnn_coco_10000.h5").epoch == 10000


def test_parse_checkpoint_round_trips_with_checkpoint_path():
    path = checkpoint_path("logs", "Shapes", START, 42)
    assert parse_checkpoint(path) == Checkpoint(Path("logs/shapes20260127T093059"), 42)
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


def test_model_checkpoint_path_is_matterports_format_template(tmp_path):
    # matterport's MaskRCNN.checkpoint_path: "<log_dir>/mask_rcnn_<name>_{epoch:04d}.h5", filled by its callback.
    from mrcnn.train.checkpoints import checkpoint_epoch, checkpoint_path_template

    template = checkpoint_path_template(tmp_path / "shapes20260127T093059", "Shapes")
    filled = Path(template.format(epoch=7))
    assert filled == tmp_path / "shapes20260127T093059" / checkpoint_file_name("Shapes", 7)
    assert checkpoint_epoch(filled.name, "shapes") == 7 and checkpoint_epoch("mask_rcnn_coco.h5", "coco") is None
