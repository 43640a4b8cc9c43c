"""Where the CLI looks for its config and weights files when the user names none.

Config: ``./configs/deepfashion2.toml`` in the current folder if present, else
the copy shipped with fseg (the repository's ``configs/``).

Weights for ``fseg predict`` (first match wins):
  1. ``--weights FILE``, or ``--weights last`` = newest checkpoint under ``logs/``;
  2. the ``FSEG_WEIGHTS`` environment variable (a file, or ``last``);
  3. the newest checkpoint of the config's NAME under ``logs/`` (what ``fseg
     train`` writes), so predict works right after training;
  4. ``weights/<NAME>.h5`` (where the downloaded models go).
``logs/`` and ``weights/`` are relative to the current folder.
Standard library (and mrcnn.checkpoints) only: cheap to import.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from mrcnn.checkpoints import find_last

DEFAULT_CONFIG_NAME = "deepfashion2.toml"
LOGS_DIR = Path("logs")
WEIGHTS_DIR = Path("weights")
WEIGHTS_ENV = "FSEG_WEIGHTS"
LAST = "last"

FASHION_MODEL_URL = "https://drive.google.com/file/d/1FVkhA4ys88C0bvUEb2Uh8lu1lQC7iD8m/view?usp=drive_link"
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


class WeightsNotFound(Exception):
    """No weights file could be found; the one-line message says where to get one."""


@dataclass(frozen=True)
class WeightsChoice:
    """The weights file to load, and why it was chosen (shown to the user)."""

    path: Path
    reason: str


def default_config_path(cwd: str | os.PathLike | None = None) -> Path:
    """``<cwd>/configs/deepfashion2.toml`` if it exists, else the copy installed with fseg."""
    return config_path(DEFAULT_CONFIG_NAME, cwd)


def config_path(file_name: str, cwd: str | os.PathLike | None = None) -> Path:
    """``<cwd>/configs/<file_name>`` if it exists, else the copy installed with fseg.

    The installed copy is the repository's ``configs/`` (next to the ``fseg``
    package) or ``fseg/configs/`` (package data of a wheel install), whichever
    exists; the repository path is returned when neither does, so the error
    message names a sensible place.
    """
    local = Path(cwd if cwd is not None else Path.cwd()) / "configs" / file_name
    if local.is_file():
        return local
    package_dir = Path(__file__).resolve().parent
    candidates = [package_dir.parent / "configs" / file_name, package_dir / "configs" / file_name]
    return next((p for p in candidates if p.is_file()), candidates[0])


def resolve_weights(
    option: str | None,
    config_name: str,
    *,
    env: Mapping[str, str] | None = None,
    logs_dir: str | os.PathLike = LOGS_DIR,
    weights_dir: str | os.PathLike = WEIGHTS_DIR,
) -> WeightsChoice:
    """Pick the weights file for ``fseg predict`` (order in the module docstring).

    Args:
      option: the ``--weights`` value (a path or ``last``), or None.
      config_name: the config's NAME (log folders and ``weights/<NAME>.h5``).
      env: environment variables (default ``os.environ``).
    Raises:
      WeightsNotFound: the chosen or every candidate file is missing.
    """
    env = os.environ if env is None else env
    logs_dir, weights_dir = Path(logs_dir), Path(weights_dir)
    if option:
        return _explicit(option, "--weights", config_name, logs_dir)
    if env.get(WEIGHTS_ENV):
        return _explicit(env[WEIGHTS_ENV], f"${WEIGHTS_ENV}", config_name, logs_dir)
    last = find_last(logs_dir, config_name)
    if last is not None:
        return WeightsChoice(last, f"newest checkpoint of {config_name!r} under {logs_dir}/")
    fallback = weights_dir / f"{config_name}.h5"
    if fallback.is_file():
        return WeightsChoice(fallback, f"default {weights_dir}/<NAME>.h5")
    raise WeightsNotFound(
        f"no weights found (no --weights, ${WEIGHTS_ENV} unset, no checkpoint of {config_name!r} under "
        f"{logs_dir}/, no {fallback}). {download_hint(fallback)}"
    )


def _explicit(value: str, source: str, config_name: str, logs_dir: Path) -> WeightsChoice:
    """Resolve a user-given weights value: ``last`` or a file path."""
    if value.strip().lower() == LAST:
        last = find_last(logs_dir, config_name)
        if last is None:
            raise WeightsNotFound(
                f"{source} last: no checkpoint of {config_name!r} under {logs_dir}/ "
                f"(expected {logs_dir}/{config_name.lower()}YYYYMMDDTHHMM/mask_rcnn_{config_name.lower()}_NNNN.h5); "
                f"train first with `fseg train`, or give a weights file"
            )
        return WeightsChoice(last, f"{source} last: newest checkpoint under {logs_dir}/")
    path = Path(value).expanduser()
    if path.is_dir():
        raise WeightsNotFound(f"{source} {path}: is a folder; give a .h5 weights file")
    if not path.is_file():
        raise WeightsNotFound(f"{source} {path}: file not found. {download_hint(path)}")
    return WeightsChoice(path, source)


def download_hint(target: Path) -> str:
    """One sentence telling where to download weights and where to put them."""
    return (
        f"Download the DeepFashion2 model from {FASHION_MODEL_URL} and save it as {target} "
        f"(or pass --weights FILE / set ${WEIGHTS_ENV}); matterport's COCO weights (81 classes, "
        f"needs a COCO config) are at {COCO_MODEL_URL}"
    )
