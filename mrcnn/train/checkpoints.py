"""matterport's checkpoint naming, and finding the newest checkpoint (``--weights last``).

A training run writes into its own log folder, one weights file per epoch::

    <model_dir>/<name><YYYYMMDDTHHMMSS>[_<k>]/mask_rcnn_<name>_<NNNN>.h5

``<name>`` is the config NAME in lower case, the timestamp is the run's start
(local time, to the second), ``_<k>`` (2, 3, ...) is added when a folder of that
name exists already (two runs started in the same second), and ``NNNN`` is the
number of epochs completed, four digits or more (``mask_rcnn_deepfashion2_0001.h5``
after the first epoch). A new run never writes into an existing folder
(:func:`create_run_dir` claims its name with an exclusive ``mkdir``).
The file names are matterport's; folder names to the minute (matterport's
``YYYYMMDDTHHMM``) are read too, so log folders of either code base can be mixed.

Each run folder also holds the config it trained with (:func:`write_run_config`):
``config.toml`` (``mrcnn.config.load_config`` reads it back) and ``config.txt``
(matterport's ``display()`` listing), so a checkpoint says what made it
(:func:`run_config_for`).

Standard library only at import time (the CLI finds checkpoints without loading TensorFlow);
:func:`write_run_config` imports ``mrcnn.config`` and ``mrcnn.io.files`` when called.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import NamedTuple

RUN_CONFIG_FILE = "config.toml"
RUN_CONFIG_TEXT_FILE = "config.txt"
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S"
# matterport's minute stamps, ours to the second, and the suffix of a same-second run.
_TIMESTAMP_PATTERN = r"(\d{8}T\d{4}(?:\d{2})?)(?:_(\d+))?"


class Checkpoint(NamedTuple):
    """Where a checkpoint file belongs: its run's log folder and its epoch number."""

    log_dir: Path
    epoch: int


def log_dir_name(name: str, start: dt.datetime, suffix: int = 1) -> str:
    """Folder name of a run: ``"deepfashion2" + "20260127T093059"`` (+ ``"_2"``, ... for ``suffix`` > 1)."""
    return f"{name.lower()}{start.strftime(_TIMESTAMP_FORMAT)}" + (f"_{suffix}" if suffix > 1 else "")


def create_run_dir(model_dir: str | os.PathLike, name: str, start: dt.datetime) -> Path:
    """Create and return a new run folder ``<model_dir>/<name><timestamp>[_k]`` that no other run uses.

    The name is claimed by ``mkdir`` without ``exist_ok``: of two runs started in the same second,
    one gets ``..._2``. Raises OSError when ``model_dir`` cannot be written.
    """
    Path(model_dir).mkdir(parents=True, exist_ok=True)
    for suffix in range(1, 10_000):
        candidate = Path(model_dir) / log_dir_name(name, start, suffix)
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder name for {name!r} at {start:%Y-%m-%d %H:%M:%S} in {model_dir}")


def _run_order(folder_name: str, name: str) -> tuple[str, int] | None:
    """Sort key of a run folder of config ``name`` (start time, then same-second suffix), or None."""
    match = re.fullmatch(rf"{re.escape(name.lower())}{_TIMESTAMP_PATTERN}", folder_name)
    if match is None:
        return None
    stamp = match.group(1).ljust(15, "0")  # a minute stamp sorts as second 00
    return stamp, int(match.group(2) or 1)


def run_name(config) -> str:
    """The name a config's run folders and checkpoints carry: its NAME (matterport's), "mrcnn" when empty."""
    return config.NAME or "mrcnn"


def checkpoint_file_name(name: str, epoch: int) -> str:
    """File name of the weights after ``epoch`` epochs: ``mask_rcnn_deepfashion2_0007.h5``."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return f"{_checkpoint_stem(name)}{epoch:04d}.h5"


def checkpoint_epoch(file_name: str, name: str) -> int | None:
    """The epoch of a checkpoint file name of config ``name`` (:func:`checkpoint_file_name`), else None."""
    match = re.fullmatch(rf"{re.escape(_checkpoint_stem(name))}(\d{{4,}})\.h5", file_name)
    return int(match.group(1)) if match else None


def checkpoint_path_template(log_dir: str | os.PathLike, name: str) -> str:
    """matterport's ``MaskRCNN.checkpoint_path``: ``<log_dir>/mask_rcnn_<name>_{epoch:04d}.h5``, a
    ``str.format(epoch=...)`` template."""
    return str(Path(log_dir) / f"{_checkpoint_stem(name).replace('{', '{{').replace('}', '}}')}{{epoch:04d}}.h5")


def _checkpoint_stem(name: str) -> str:
    return f"mask_rcnn_{name.lower()}_"


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
    epoch = checkpoint_epoch(file_name, folder.group(1))
    return None if epoch is None else Checkpoint(path.parent, epoch)


def find_last(model_dir: str | os.PathLike, name: str) -> Path | None:
    """The newest checkpoint of config ``name`` under ``model_dir``, or None.

    The newest run is the log folder ``<name><timestamp>[_k]`` with the latest
    timestamp (then the highest ``k``); within it, the file with the highest epoch. Unlike matterport
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
    runs = [(key, p) for p in model_dir.iterdir() if p.is_dir() and (key := _run_order(p.name, name)) is not None]
    for _, run in sorted(runs, reverse=True):
        newest = newest_checkpoint_in(run, name)
        if newest is not None:
            return newest
    return None


def newest_checkpoint_in(log_dir: str | os.PathLike, name: str) -> Path | None:
    """The highest-epoch ``mask_rcnn_<name>_NNNN.h5`` file in ``log_dir``, or None."""
    best: tuple[int, Path] | None = None
    for path in Path(log_dir).iterdir():
        epoch = checkpoint_epoch(path.name, name)
        if epoch is not None and path.is_file() and (best is None or epoch > best[0]):
            best = (epoch, path)
    return best[1] if best else None


def write_run_config(log_dir: str | os.PathLike, config) -> None:
    """Write ``config.toml`` and ``config.txt`` (matterport's display listing) into a run folder, atomically."""
    from mrcnn.config import save_config
    from mrcnn.io.files import atomic_write

    log_dir = Path(log_dir)
    save_config(config, log_dir / RUN_CONFIG_FILE)
    text = (config.display_text() + "\n").encode("utf-8")
    atomic_write(log_dir / RUN_CONFIG_TEXT_FILE, lambda f: f.write(text))


def run_config_for(weights_path: str | os.PathLike) -> Path | None:
    """The ``config.toml`` of the run folder holding ``weights_path``, or None (not a run's checkpoint)."""
    candidate = Path(weights_path).parent / RUN_CONFIG_FILE
    return candidate if candidate.is_file() else None
