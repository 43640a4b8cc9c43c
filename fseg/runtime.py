"""What every model command needs, in one place: config, weights, model, output folders.

    choice = resolve_weights("last", config_name, logs_dir="logs")   # --weights FILE|last|none, $FSEG_WEIGHTS, ...
    config, source = load_config(config_option, weights=choice, overrides={...})
    model = load_model(config, choice.path)
    prepare_out_dir(out_dir)

Config (``load_config``): ``--config FILE`` if given; else the config the weights' run
folder recorded (``<run>/config.toml``, written by ``fseg train``), so a checkpoint is
predicted and evaluated with the config that trained it; else ``./configs/<default>``
or the copy shipped with fseg. The caller prints where it came from.

Weights (``resolve_weights``), first match wins:
  1. ``--weights FILE``; ``--weights last`` = the newest checkpoint of the config's NAME under
     ``logs/``; ``--weights none`` = random initialisation (when the command allows it);
  2. the ``FSEG_WEIGHTS`` environment variable (a file, or ``last``);
  3. the newest checkpoint of the config's NAME under ``logs/`` (so predict works right after training);
  4. ``weights/<NAME>.h5`` (where the downloaded models go).
Steps 2-4 apply only where the command has a default (predict, evaluate).

Errors are one-line ``CommandError``s with the exit codes of ``fseg.cli_util``. Only the
standard library and ``mrcnn``'s TensorFlow-free modules are imported at module level.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from fseg.cli_util import EXIT_FAILED, EXIT_USAGE, CommandError, user_errors
from mrcnn.train.checkpoints import find_last, run_config_for, run_name  # noqa: F401 (run_name: for the commands)

DEFAULT_CONFIG_NAME = "deepfashion2.toml"
LOGS_DIR = Path("logs")
WEIGHTS_DIR = Path("weights")
WEIGHTS_ENV = "FSEG_WEIGHTS"
LAST = "last"
NONE = "none"

FASHION_MODEL_URL = "https://drive.google.com/file/d/1FVkhA4ys88C0bvUEb2Uh8lu1lQC7iD8m/view?usp=drive_link"
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


class WeightsNotFound(Exception):
    """No weights file could be found; the one-line message says where to get one."""


@dataclass(frozen=True)
class WeightsChoice:
    """The weights file to load (None: random initialisation), and why it was chosen (shown to the user)."""

    path: Path | None
    reason: str


# ---------------------------------------------------------------- config
def config_path(file_name: str, cwd: str | os.PathLike | None = None) -> Path:
    """``<cwd>/configs/<file_name>`` if it exists, else the copy installed with fseg.

    The installed copy is the repository's ``configs/`` (next to the ``fseg`` package) or
    ``fseg/configs/`` (package data of a wheel install), whichever exists; the repository path
    is returned when neither does, so the error message names a sensible place.
    """
    local = Path(cwd if cwd is not None else Path.cwd()) / "configs" / file_name
    if local.is_file():
        return local
    package_dir = Path(__file__).resolve().parent
    candidates = [package_dir.parent / "configs" / file_name, package_dir / "configs" / file_name]
    return next((p for p in candidates if p.is_file()), candidates[0])


def default_config_path(cwd: str | os.PathLike | None = None) -> Path:
    """``<cwd>/configs/deepfashion2.toml`` if it exists, else the copy installed with fseg."""
    return config_path(DEFAULT_CONFIG_NAME, cwd)


def choose_config_file(option: str | os.PathLike | None, weights: WeightsChoice | None = None,
                       default: Path | None = None) -> tuple[Path, str]:
    """(config file, why): ``--config``, else the weights' run config, else ``default`` (the shipped config)."""
    if option:
        return Path(option), "--config"
    recorded = run_config_for(weights.path) if weights is not None and weights.path is not None else None
    if recorded is not None:
        return recorded, f"the config recorded with {weights.path.name}'s run"
    return (default or default_config_path()), "default"


def load_config(option: str | os.PathLike | None, *, weights: WeightsChoice | None = None,
                default: Path | None = None, overrides: Mapping | None = None, source: str = "command line"):
    """(Config, "<file> (<why>)"): the chosen config file (see :func:`choose_config_file`) with ``overrides``.

    Raises CommandError (exit 2) naming the file and key for a bad config.
    """
    from mrcnn.config import ConfigError, load_config as read_config, with_overrides

    path, why = choose_config_file(option, weights, default)
    with user_errors(ConfigError):
        config = read_config(path)
        if overrides:
            config = with_overrides(config, source=source, **overrides)
    return config, f"{path} ({why})"


def load_inference_config(config_option, weights_option, overrides: Mapping, *, source: str = "command line",
                          use_defaults: bool = True):
    """(config, "<file> (<why>)", WeightsChoice) of a command that runs a trained model (predict, evaluate,
    export).

    The weights are chosen first (``--weights``, else by the named config's NAME: :func:`resolve_weights`),
    then the config (``--config``, else the one recorded with the weights' run, :func:`choose_config_file`),
    with ``overrides``. A training config's "crop" resize mode (a random crop of each image) becomes
    "pad64": the same scale, the whole image. In the modes that keep each photo's own size ("pad64",
    "none") a config's batch of several images (a training setting) becomes one image per call, unless
    ``overrides`` set IMAGES_PER_GPU (``--batch-size``).
    """
    from mrcnn.config import ConfigError, with_overrides

    named, named_source = load_config(config_option)
    if weights_option is None and use_defaults and not named.NAME:
        raise CommandError(f"{named_source}: the config sets no NAME (needed to find its weights); "
                           f"give --weights FILE", EXIT_USAGE)
    choice = resolve_weights_or_exit(weights_option, run_name(named), use_defaults=use_defaults)
    config, config_source = load_config(config_option, weights=choice, overrides=overrides, source=source)
    changes = {}
    if config.IMAGE_RESIZE_MODE == "crop":
        changes["IMAGE_RESIZE_MODE"] = "pad64"
    if config.IMAGE_RESIZE_MODE != "square" and config.BATCH_SIZE > 1 and "IMAGES_PER_GPU" not in overrides:
        changes.update(IMAGES_PER_GPU=1, GPU_COUNT=1)  # a training batch, in a mode that keeps each photo's size
    if changes:
        with user_errors(ConfigError):
            config = with_overrides(config, source=f"{config_source}, inference", **changes)
    if "IMAGE_RESIZE_MODE" in changes:
        config_source += ', IMAGE_RESIZE_MODE "pad64" for its "crop"'
    return config, config_source, choice


# ---------------------------------------------------------------- weights
def resolve_weights(option: str | None, config_name: str, *, logs_dir: str | os.PathLike = LOGS_DIR,
                    allow_none: bool = False, use_defaults: bool = True, env: Mapping[str, str] | None = None,
                    weights_dir: str | os.PathLike = WEIGHTS_DIR) -> WeightsChoice:
    """Pick the weights file (order in the module docstring).

    Args:
      option: the ``--weights`` value (a path, ``last``, ``none``), or None.
      config_name: the config's NAME (run folders and ``weights/<NAME>.h5``).
      allow_none: ``none`` means random initialisation (``fseg train``).
      use_defaults: without ``option``, fall back to $FSEG_WEIGHTS, the newest run, ``weights/<NAME>.h5``.
    Raises:
      WeightsNotFound: the chosen or every candidate file is missing (one line, with a download hint).
    """
    env = os.environ if env is None else env
    logs_dir, weights_dir = Path(logs_dir), Path(weights_dir)
    if option:
        return _explicit(option, "--weights", config_name, logs_dir, allow_none)
    if not use_defaults:
        raise WeightsNotFound("--weights is required (a .h5 file, 'last' or 'none')")
    if env.get(WEIGHTS_ENV):
        return _explicit(env[WEIGHTS_ENV], f"${WEIGHTS_ENV}", config_name, logs_dir, allow_none)
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


def _explicit(value: str, source: str, config_name: str, logs_dir: Path, allow_none: bool) -> WeightsChoice:
    """Resolve a user-given weights value: ``last``, ``none`` or a file path."""
    keyword = value.strip().lower()
    if keyword == NONE and allow_none:
        return WeightsChoice(None, f"{source} none: random initialisation")
    if keyword == LAST:
        last = find_last(logs_dir, config_name)
        if last is None:
            raise WeightsNotFound(
                f"{source} last: no checkpoint of {config_name!r} under {logs_dir}/ "
                f"(expected {logs_dir}/{config_name.lower()}YYYYMMDDTHHMMSS/mask_rcnn_{config_name.lower()}_NNNN.h5); "
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
        f"(or pass --weights FILE; predict and evaluate also read ${WEIGHTS_ENV}); matterport's COCO weights "
        f"(81 classes, needs a COCO config) are at {COCO_MODEL_URL}"
    )


def resolve_weights_or_exit(option, config_name: str, **kwargs) -> WeightsChoice:
    """:func:`resolve_weights` with a missing file as a one-line error (exit 2)."""
    with user_errors(WeightsNotFound):
        return resolve_weights(option, config_name, **kwargs)


# ---------------------------------------------------------------- model
def check_precision_or_exit(precision: str) -> None:
    """``--precision`` this machine cannot compute in natively: a one-line error (exit 2), before any loading."""
    from fseg.cli_util import import_tensorflow_quietly
    from mrcnn.modeling.precision import PrecisionError, check_precision

    if precision != "float32":  # float32 needs no check; the others list the GPUs through TensorFlow
        import_tensorflow_quietly()

    try:
        check_precision(precision)
    except PrecisionError as exc:
        raise CommandError(f"--precision {exc}".replace("use bf16", "use --precision bf16"), EXIT_USAGE) from None


def load_model(config, weights_path: Path | None, mode: str = "inference", *, exclude=(), **model_options):
    """Build ``MaskRCNN(mode)`` for ``config`` and load ``weights_path`` (None: random weights).

    A weights file that cannot be used (damaged, not HDF5, another class count or backbone)
    is a one-line error with exit code 1, as in ``fseg weights inspect``; so is, for an inference model, a
    file that leaves any weighted layer of the model unloaded (detections from random layers are no model's).
    Returns (model, load report or None).
    """
    from fseg.cli_util import import_tensorflow_quietly

    import_tensorflow_quietly()
    from mrcnn.io.h5_legacy import WeightsError
    from mrcnn.model import MaskRCNN

    model = MaskRCNN(mode=mode, config=config, **model_options)
    report = None
    if weights_path is not None:
        with user_errors(WeightsError, exit_code=EXIT_FAILED):
            report = model.load_weights(str(weights_path), by_name=True, exclude=list(exclude))
        if mode == "inference" and report.in_model_not_in_file:
            missing = report.in_model_not_in_file
            total = len(report.loaded) + len(report.excluded) + len(missing)
            names = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise CommandError(f"{weights_path} has no weights for {len(missing)} of the model's {total} weighted "
                               f"layers ({names}): it holds another model; give the config it was trained "
                               f"with (--config)", EXIT_FAILED)
    return model, report


def annotation_fields(config) -> list[str]:
    """COCO annotation keys the config's ROI heads train on (e.g. "keypoints" for the landmark head)."""
    from mrcnn.modeling.roi_heads import build_roi_heads, instance_fields

    return [field.name for field in instance_fields(build_roi_heads(config))]


# ---------------------------------------------------------------- outputs
def check_out_dir(out_dir: Path, what: str = "--out") -> None:
    """Fail now (exit 2) if ``out_dir`` could not be created or written later; creates nothing.

    Checks: not an existing file; the folder, or its nearest existing parent, is a writable folder.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CommandError(f"cannot use {what} {out_dir}: a file of that name exists", EXIT_USAGE)
    existing = next(p for p in (out_dir, *out_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise CommandError(f"cannot create {what} {out_dir}: {existing} is a file, not a folder", EXIT_USAGE)
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == out_dir else f" (in {existing})"
        raise CommandError(f"{what} {out_dir} is not writable{where}: permission denied or read-only", EXIT_USAGE)


def prepare_out_dir(out_dir: Path, what: str = "--out") -> None:
    """:func:`check_out_dir`, then create the folder (and its parents). A failure is a one-line error (exit 2)."""
    check_out_dir(out_dir, what)
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {what} {out_dir}: {exc.strerror or exc}", EXIT_USAGE) from None
