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

    TensorFlow prints them straight to file descriptor 2 while it loads, before
    any Python logging setting applies; they would bury the CLI's own messages.
    Python errors raised by the import are not affected.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
