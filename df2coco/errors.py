"""Exceptions raised by df2coco for bad usage (as opposed to bad data).

Bad *data* (a broken annotation file, a polygon outside the image) is never an
exception: it is a :class:`df2coco.report.Problem`, counted and reported, and
the conversion carries on. Bad *usage* stops the run before anything is
written; the CLI turns these into a one-line ``Error: ...`` with exit code 2.
"""
from __future__ import annotations


class ConvertError(Exception):
    """The split cannot be converted as asked: a folder is missing, the output
    already exists without ``force``, an option value is invalid, ..."""


class OutputError(Exception):
    """An output file could not be written during the run (disk full, the folder
    became read-only, ...). The run failed (exit code 1); every temporary file
    was removed and an existing output was left untouched."""


class StatsError(Exception):
    """The file given to ``stats`` is missing or is not a COCO instances JSON."""
