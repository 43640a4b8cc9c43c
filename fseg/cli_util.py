"""Shared pieces of the CLI: one-line errors and exit codes that scripts can trust.

Exit codes used by every command:
    0  success
    1  the job ran but failed (bad data under ``--strict``, some images unreadable, ...)
    2  bad usage: wrong option, missing input file, output exists without ``--force``
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(click.ClickException):
    """A one-line error printed as ``Error: <message>`` with a chosen exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def user_errors(*error_types: type[BaseException], exit_code: int = EXIT_USAGE):
    """Turn the listed library exceptions into one-line ``CommandError``s.

    Library code raises precise exceptions (``df2coco.errors.ConvertError``,
    ``mrcnn.io.h5_legacy.WeightsError``, ...); the CLI shows their message only, never
    a traceback.
    """
    try:
        yield
    except error_types as exc:  # type: ignore[misc]
        raise CommandError(str(exc), exit_code=exit_code) from exc


def echo_err(message: str) -> None:
    """Print a line to stderr (warnings, progress notes)."""
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stderr.isatty()


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up notices (oneDNN, CUDA, absl) hidden.

    TensorFlow prints them straight to file descriptor 2 while it loads and when it
    first lists the devices (on a machine with CUDA's libraries but no GPU, an
    ``E0000 ... failed call to cuInit`` line), before any Python logging setting
    applies; they would bury the CLI's own messages. So the physical devices are
    listed here too, still silenced. That leaves the runtime unconfigured: thread
    counts and logical devices can still be set afterwards. Python errors raised by
    the import are not affected.

    Later C++ notices are hidden too, ERROR lines included (``TF_CPP_MIN_LOG_LEVEL`` 3, unless the
    user set it): TensorFlow writes lines such as ``E0000 ... oneDNN supports DT_BOOL only on platforms
    with AVX-512. Falling back to the default Eigen-based implementation`` while training runs fine,
    and an error that stops a run is raised in Python, where the CLI reports it in one line.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (e.g. by a test runner)
        import tensorflow  # noqa: F401
        return
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, fd)
        import tensorflow

        tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def os_error_message(exc: OSError, action: str = "cannot write") -> str:
    """One line for an OS error: ``"cannot write /data/out.json: No space left on device"``.

    Args:
      exc: the error (ENOSPC, EROFS, EACCES, EISDIR, ENOTDIR, EIO, ...).
      action: what failed, put before the file name.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{action} {exc.filename}: {reason}" if exc.filename else f"{action}: {reason}"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived. A ``KeyboardInterrupt``, so that every cleanup path for Ctrl-C
    (context managers, ``finally``, worker pools) runs for SIGTERM too.

    Attributes:
      signum: the signal's number (``signal.SIGTERM`` = 15, ``signal.SIGINT`` = 2).
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def exit_on_signals(what_is_kept: str):
    """Handle SIGTERM like SIGINT for a long command, and exit with one line and 128 + the signal.

    Inside the block both signals raise :class:`Interrupted` in the main thread,
    so temporary files are removed by the code's own cleanup. A second signal
    during that cleanup is ignored, so the cleanup finishes. On the way out the
    command prints ``Error: interrupted by SIGTERM; <what_is_kept>`` and exits
    with 143 (SIGTERM) or 130 (SIGINT), the shell's convention.

    Args:
      what_is_kept: what the user still has, e.g. ``"no output written; existing files unchanged"``.
    """
    import signal

    def interrupt(signum, frame):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    try:
        previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals cannot be handled here
        previous = {}
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        raise CommandError(f"interrupted by {signal.Signals(signum).name}; {what_is_kept}",
                           exit_code=128 + signum) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


PRECISION_HELP = ("Compute precision of the network: float32, bf16 (CPUs with AVX512_BF16 or AMX, recent GPUs; "
                  "about 3x faster on such CPUs, detections agree closely with float32) or fp16 (GPUs). Refused "
                  "where the hardware would only emulate it. Weights and outputs are the same files either way.")


def precision_option(function):
    """The ``--precision`` option of the commands that run a model (predict, evaluate)."""
    return click.option("--precision", type=click.Choice(["float32", "bf16", "fp16"]), default="float32",
                        show_default=True, help=PRECISION_HELP)(function)


def weights_option(*, default_chain: bool):
    """The ``--weights`` option of the commands that run a trained model (predict, evaluate, export).

    ``default_chain``: the command finds weights when the option is absent (``runtime.resolve_weights``'s
    order), and the help says where it looks.
    """
    help_text = "Weights .h5 file, or `last` for the newest checkpoint of the config's NAME under logs/."
    if default_chain:
        help_text += (" Default: $FSEG_WEIGHTS, else the newest checkpoint of the config's NAME under logs/, "
                      "else weights/<NAME>.h5.")
    return click.option("--weights", "-w", default=None, metavar="FILE|last", help=help_text)


def config_option(function):
    """The ``--config`` option of the commands that run a trained model (predict, evaluate, export)."""
    return click.option("--config", "-c", "config_path", default=None,
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="Model config TOML. Default: the config recorded with the weights' training run, "
                             "else ./configs/deepfashion2.toml, else the one shipped with fseg.")(function)
