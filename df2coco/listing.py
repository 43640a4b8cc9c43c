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
      paths: ``{number: path}`` of the file used for each number.
      problems: names that are not numbers (ignored).
      duplicates: ``{number: problems}``, one ``duplicate_number`` problem per ignored file.
    """

    paths: dict[int, str]
    problems: list[Problem]
    duplicates: dict[int, list[Problem]]


def list_numbered(folder: Path, extensions: tuple[str, ...]) -> Listing:
    """The files ``<digits><ext>`` of ``folder`` (``ext`` compared in lower case).

    Args:
      folder: the image or annotation folder.
      extensions: accepted extensions, lower case, in order of preference.
    Raises:
      ConvertError: the folder cannot be listed (permission denied, ...).
    """
    candidates: dict[int, list[tuple[tuple, str]]] = {}
    problems: list[Problem] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                stem, ext = os.path.splitext(entry.name)
                ext = ext.lower()
                if ext not in extensions or not entry.is_file():
                    continue
                if not _NUMBERED.match(stem):
                    detail = "file name is not a number like 000001"
                    problems.append(Problem(entry.path, None, P.BAD_FIELD, R.IGNORED, detail))
                    continue
                number = int(stem)
                preference = (stem != f"{number:06d}", extensions.index(ext), entry.name)
                candidates.setdefault(number, []).append((preference, entry.path))
    except OSError as exc:
        raise ConvertError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    paths, duplicates = {}, {}
    for number, files in candidates.items():
        if len(files) > 1:
            files.sort()
            used = os.path.basename(files[0][1])
            duplicates[number] = [Problem(path, None, P.DUPLICATE_NUMBER, R.IGNORED,
                                          f"same number as {used}, which is used") for _, path in files[1:]]
        paths[number] = files[0][1]
    problems.sort(key=lambda p: p.file)
    return Listing(paths, problems, duplicates)
