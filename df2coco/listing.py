"""List a split's files by number: ``image/000042.jpg`` and ``annos/000042.json`` -> image 42.

A file belongs to number N when its name is ``<digits><extension>`` with the
digits' value N (``000042.jpg``, ``42.jpg``). Two files with one number in the
same folder (``000001.jpg`` and ``000001.png``; ``1.json`` and ``000001.json``)
are a ``duplicate_number`` problem: one file is used, the others are reported
and ignored. The choice does not depend on directory order:

1. the name in DeepFashion2's six-digit form (``000001``) wins over other spellings (``1``, ``0000001``);
2. then the extension in the order ``.jpg``, ``.jpeg``, ``.png`` (images);
3. then the smaller file name in code-point order (``000001.JPG`` before ``000001.jpg``).
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from df2coco import problems as P
from df2coco import report as R
from df2coco.errors import ConvertError
from df2coco.report import Problem

_NUMBERED = re.compile(r"\d+\Z")


@dataclass(frozen=True)
class Listing:
    """The numbered files of one folder.

    Attributes:
      folder: the folder listed.
      names: ``{number: file name}`` of the file used for each number (names, not paths: a
        split of 191,961 images then needs about 100 bytes per file for its listing).
      problems: names that are not numbers (ignored).
      duplicates: ``{number: problems}``, one ``duplicate_number`` problem per ignored file.
    """

    folder: Path
    names: dict[int, str]
    problems: list[Problem]
    duplicates: dict[int, list[Problem]]

    def path(self, number: int) -> str | None:
        """Path of the file used for ``number``, or None if there is none."""
        name = self.names.get(number)
        return None if name is None else self._prefix + name

    @functools.cached_property
    def _prefix(self) -> str:
        """``folder`` and a separator: paths are made by concatenation (os.path.join costs 2 us each)."""
        return os.path.join(self.folder, "")


def list_numbered(folder: Path, extensions: tuple[str, ...]) -> Listing:
    """The files ``<digits><ext>`` of ``folder`` (``ext`` compared in lower case).

    Args:
      folder: the image or annotation folder.
      extensions: accepted extensions, lower case, in order of preference.
    Raises:
      ConvertError: the folder cannot be listed (permission denied, ...).
    """
    names: dict[int, str] = {}
    clashes: dict[int, list[str]] = {}
    problems: list[Problem] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                stem, ext = os.path.splitext(name)
                if ext.lower() not in extensions or not entry.is_file():
                    continue
                if not _NUMBERED.match(stem):
                    detail = "file name is not a number like 000001"
                    problems.append(Problem(entry.path, None, P.BAD_FIELD, R.IGNORED, detail))
                    continue
                number = int(stem)
                if number in names:
                    clashes.setdefault(number, [names[number]]).append(name)
                else:
                    names[number] = name
    except OSError as exc:
        raise ConvertError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    duplicates = {}
    for number, clashing in clashes.items():
        clashing.sort(key=lambda name: _preference(name, number, extensions))
        names[number] = clashing[0]
        duplicates[number] = [Problem(os.path.join(folder, name), None, P.DUPLICATE_NUMBER, R.IGNORED,
                                      f"same number as {clashing[0]}, which is used") for name in clashing[1:]]
    problems.sort(key=lambda p: p.file)
    return Listing(Path(folder), names, problems, duplicates)


def _preference(name: str, number: int, extensions: tuple[str, ...]) -> tuple:
    """Sort key of files sharing ``number``: six-digit name, then extension order, then name."""
    stem, ext = os.path.splitext(name)
    return stem != f"{number:06d}", extensions.index(ext.lower()), name
