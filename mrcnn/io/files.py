"""Files written whole or not at all, and JSON read with one-line errors: the one atomic writer of ``mrcnn``.

Every output of ``mrcnn`` (images, JSON, weights, checkpoints, run configs) is first
written to a temporary file beside its target and renamed into place when it is
complete, so a crash, a full disk or Ctrl-C never leaves a half-written file under
the real name, and never leaves the temporary file behind either (it is removed on
every failure path, also when closing it fails). Standard library only.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator


def file_problem(path: str | os.PathLike, exc: OSError, what: str = "file") -> str:
    """One line for an OS error on ``path``: ``"<what> not found: <path>"``, ``"<path>: is a folder, not a
    <what>"``, else ``"<path>: <the OS's words>"`` (``No space left on device``, ``Read-only file system``, ...,
    the words the CLI and ``df2coco`` use too)."""
    if exc.errno == errno.ENOENT:
        return f"{what} not found: {path}"
    if exc.errno == errno.EISDIR:
        return f"{path}: is a folder, not a {what}"
    reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{path}: {reason}"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden name in ``path``'s folder: ``.<name>.<pid>.<random>.tmp`` (not created).

    The process id lets a later run tell the leftovers of a killed writer (:func:`remove_dead_temporary_files`);
    ``df2coco.leftovers`` names its temporary files the same way (a test keeps the two in agreement).
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp")  # a temporary_sibling's name


def remove_dead_temporary_files(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files in ``folder`` (:data:`TEMPORARY_NAME`) whose writing process is gone.

    For an output folder a killed run (``kill -9``, power loss) wrote into. A live process's file is never
    touched. Returns the names deleted; files that vanish meanwhile or cannot be deleted are skipped.
    """
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        match = TEMPORARY_NAME.fullmatch(path.name)
        if match and not process_alive(int(match.group("pid"))) and path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path.name)
    return removed


def process_alive(pid: int) -> bool:
    """True if a process with this id exists on this machine (or its existence cannot be ruled out)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; an id no process can have
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the block to create; rename it onto ``path`` on success.

    For writers that open the file themselves (h5py). On any exception the temporary
    file is removed and the exception passes through; ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a device such as /dev/null, a FIFO: never renamed over
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Create ``path`` whole or not at all: ``write(f)`` fills a temporary file that is then renamed.

    The result gets the usual permissions (0666 minus the umask). Raises what ``write``, the
    file system or the rename raise (OSError for a full or read-only disk, naming ``path``, not the
    temporary file: a failed ``f.write`` names no file at all); nothing is left behind.
    """
    tmp = None
    try:
        with atomic_path(path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                write(f)
    except OSError as exc:
        if exc.filename is not None and str(exc.filename) != str(tmp):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = None) -> None:
    """Write ``data`` as JSON (compact unless ``indent``), atomically."""
    separators = (",", ":") if indent is None else None
    payload = json.dumps(data, separators=separators, indent=indent).encode("utf-8")
    atomic_write(path, lambda f: f.write(payload))


def read_json(path: str | os.PathLike, error: type[Exception], what: str, object_hook=None) -> Any:
    """The parsed JSON file at ``path``; a missing, folder or non-JSON path raises ``error`` (one line).

    ``what`` names the file in the messages ("COCO annotation file", "results file").
    ``object_hook`` is passed to ``json.load`` (e.g. to drop big fields while parsing).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return json.load(f, object_hook=object_hook)
    except OSError as exc:
        raise error(file_problem(path, exc, what)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not a {what} (not valid JSON: {exc})") from None
