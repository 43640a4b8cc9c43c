"""matterport's checkpoint naming, and finding the newest checkpoint (``--weights last``).

A training run writes into its own log folder, one weights file per epoch::

    <model_dir>/<name><YYYYMMDDTHHMM>/mask_rcnn_<name>_<NNNN>.h5

``<name>`` is the config NAME in lower case, the timestamp is the run's start
(local time, to the minute) and ``NNNN`` the number of epochs completed, four
digits or more (``mask_rcnn_deepfashion2_0001.h5`` after the first epoch).
These are the names matterport's ``set_log_dir`` and ``find_last`` use, so log
folders of either code base can be mixed.

Standard library only.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import NamedTuple

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M"
_TIMESTAMP_PATTERN = r"\d{8}T\d{4}"


class Checkpoint(NamedTuple):
    """Where a checkpoint file belongs: its run's log folder and its epoch number."""

    log_dir: Path
    epoch: int


def log_dir_name(name: str, start: dt.datetime) -> str:
    """Folder name of a run: ``"deepfashion2" + "20260127T0930"``."""
    return f"{name.lower()}{start.strftime(_TIMESTAMP_FORMAT)}"


def checkpoint_file_name(name: str, epoch: int) -> str:
    """File name of the weights after ``epoch`` epochs: ``mask_rcnn_deepfashion2_0007.h5``."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return f"mask_rcnn_{name.lower()}_{epoch:04d}.h5"


def checkpoint_path(model_dir: str | os.PathLike, name: str, start: dt.datetime, epoch: int) -> Path:
    """``<model_dir>/<name><timestamp>/mask_rcnn_<name>_<epoch>.h5``."""
    return Path(model_dir) / log_dir_name(name, start) / checkpoint_file_name(name, epoch)


def parse_checkpoint(path: str | os.PathLike, name: str | None = None) -> Checkpoint | None:
    """Read the log folder and epoch out of a checkpoint path.

    Args:
      path: e.g. ``logs/deepfashion220260127T0930/mask_rcnn_deepfashion2_0007.h5``.
      name: when given, the config NAME the folder and file must carry.
    Returns:
      ``Checkpoint(log_dir, epoch)``, or None when the path does not follow the
      naming (a downloaded ``mask_rcnn_coco.h5``, a renamed file, ...).
    """
    path = Path(path)
    folder_name, file_name = path.parent.name, path.name
    name_pattern = re.escape(name.lower()) if name is not None else r"[\w.-]+?"
    folder = re.fullmatch(rf"({name_pattern}){_TIMESTAMP_PATTERN}", folder_name)
    if folder is None:
        return None
    file = re.fullmatch(rf"mask_rcnn_{re.escape(folder.group(1))}_(\d{{4,}})\.h5", file_name)
    if file is None:
        return None
    return Checkpoint(path.parent, int(file.group(1)))


def find_last(model_dir: str | os.PathLike, name: str) -> Path | None:
    """The newest checkpoint of config ``name`` under ``model_dir``, or None.

    The newest run is the log folder ``<name><timestamp>`` with the latest
    timestamp; within it, the file with the highest epoch. Unlike matterport
    (which raises when its newest folder is empty), a run folder without any
    checkpoint (a run stopped during its first epoch) is passed over for the
    previous one. Other names sharing the prefix (``deepfashion2_small...`` for
    ``deepfashion2``) never match.

    Args:
      model_dir: the folder holding the runs (``logs/``); a missing folder gives None.
      name: config NAME (compared in lower case).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return None
    folder_re = re.compile(rf"{re.escape(name.lower())}{_TIMESTAMP_PATTERN}")
    runs = sorted(p for p in model_dir.iterdir() if p.is_dir() and folder_re.fullmatch(p.name))
    for run in reversed(runs):
        newest = newest_checkpoint_in(run, name)
        if newest is not None:
            return newest
    return None


def newest_checkpoint_in(log_dir: str | os.PathLike, name: str) -> Path | None:
    """The highest-epoch ``mask_rcnn_<name>_NNNN.h5`` file in ``log_dir``, or None."""
    file_re = re.compile(rf"mask_rcnn_{re.escape(name.lower())}_(\d{{4,}})\.h5")
    best: tuple[int, Path] | None = None
    for path in Path(log_dir).iterdir():
        match = file_re.fullmatch(path.name)
        if match and path.is_file() and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), path)
    return best[1] if best else None
