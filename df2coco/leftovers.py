"""Temporary files and folders named after the process writing them, and removing those of dead runs.

A run that is killed outright (``kill -9``, power loss) cannot delete its temporary output. So every
temporary name carries the writer's process id: files ``.<name>.<pid>.<random>.tmp``
(:mod:`df2coco.writer`), folders ``.<name>.tmp-<pid>-<random>`` and ``.<name>.old-<pid>-<random>``
(``fseg synth``). The next run to the same output removes the temporaries of that output whose
process no longer exists. A temporary of a live process is never touched; if a dead run's id has
been taken by an unrelated process meanwhile, its leftover stays until that process ends (the safe
side). Process ids are those of this machine: a folder shared with other machines (NFS) should not
be written by runs on several machines at once.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path


def temporary_file_prefix(path: Path) -> str:
    """``.<name>.<pid>.``: the start of this process's temporary files for ``path`` (for ``mkstemp``)."""
    return f".{path.name}.{os.getpid()}."


def temporary_folder_prefix(path: Path, kind: str = "tmp") -> str:
    """``.<name>.<kind>-<pid>-``: the start of this process's temporary folders for ``path`` (for ``mkdtemp``).

    ``kind``: ``"tmp"`` for the folder being written, ``"old"`` for the folder being replaced.
    """
    return f".{path.name}.{kind}-{os.getpid()}-"


def process_alive(pid: int) -> bool:
    """True if a process with this id exists on this machine (or its existence cannot be ruled out)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; an id no process can have
        return True
    return True


def remove_dead_temporary_files(path: Path) -> list[Path]:
    """Delete ``.<name>.<pid>.<random>.tmp`` regular files next to ``path`` whose process is gone.

    Returns:
      The files deleted. Files that vanish meanwhile or cannot be deleted are skipped.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^.]+\.tmp")
    return [p for p in _dead(path.parent, pattern) if _is(p, stat.S_ISREG) and _unlink(p)]


def remove_dead_temporary_folders(path: Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>-*`` folders next to ``path`` whose process is gone.

    A ``.<name>.old-<pid>-*`` folder (the previous ``path`` being replaced) is deleted only when
    ``path`` exists: a run killed between its two renames leaves the previous folder there alone.
    Returns:
      The folders deleted.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old)-(\d+)-[^/]+")
    removed = []
    for folder, match in _dead_matches(path.parent, pattern, pid_group=2):
        if match.group(1) == "old" and not path.is_dir():
            continue
        if _is(folder, stat.S_ISDIR):
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.lexists(folder):
                removed.append(folder)
    return removed


def _dead(folder: Path, pattern: re.Pattern) -> list[Path]:
    return [p for p, _ in _dead_matches(folder, pattern, pid_group=1)]


def _dead_matches(folder: Path, pattern: re.Pattern, pid_group: int) -> list[tuple[Path, re.Match]]:
    """Entries of ``folder`` whose whole name matches ``pattern`` and whose process id is not alive."""
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is not None and not process_alive(int(match.group(pid_group))):
            found.append((folder / name, match))
    return found


def _is(path: Path, kind) -> bool:
    """``kind(mode)`` of the entry itself (a symbolic link is never followed)."""
    try:
        return kind(os.lstat(path).st_mode)
    except OSError:
        return False


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except OSError:
        return False
    return True
