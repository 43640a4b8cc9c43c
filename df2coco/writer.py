"""Write output files atomically, and the COCO JSON as a stream.

Every output is first written to a hidden temporary file in the destination
folder and renamed into place only when complete (``os.replace`` is atomic on
one filesystem): a failed or interrupted run leaves no half-written file and
never clobbers an existing one. The temporary file is deleted on every failure
path, even when closing it fails (a full disk makes the final flush fail).

:class:`CocoWriter` writes a COCO instances file record by record, so memory
does not grow with the split. COCO keeps images and annotations in two
separate arrays; the writer streams images into the output's temporary file
and annotations into a second temporary file, and appends the second to the
first when the output is committed.

Any ``OSError`` while writing (ENOSPC, EROFS, EACCES, EIO, ...) is raised as
:class:`df2coco.errors.OutputError` with a one-line message naming the output.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from df2coco.errors import OutputError

_BUFFER = 1 << 20  # bytes of write buffer per file


def with_id(annotation_json: str, ann_id: int) -> str:
    """Insert ``"id": ann_id`` as the first key of a non-empty compact JSON object ``{"image_id":...}``."""
    return f'{{"id":{ann_id},{annotation_json[1:]}'


def describe_os_error(exc: OSError) -> str:
    """``"No space left on device"`` etc.: the OS's words for an error, without the errno number."""
    return exc.strerror or str(exc) or type(exc).__name__


class AtomicTextFile:
    """A text file written to ``<dir>/.<name>.<random>.tmp`` and renamed to ``path`` on commit.

    Use as a context manager: if the block raises, or :meth:`commit` was not
    called, the temporary file is removed and ``path`` is left untouched.

    Raises:
      OutputError: the temporary file cannot be created or written, or the rename fails.
    """

    def __init__(self, path: str | Path, part_of: str | Path | None = None):
        """``part_of``: the output this file is a part of, named in errors instead of ``path``."""
        self.path = Path(path)
        self._name_in_errors = Path(part_of) if part_of is not None else self.path
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise OutputError(f"cannot write to {self.path.parent}: {describe_os_error(exc)}") from exc
        self.tmp_path = Path(tmp)
        self.file = os.fdopen(fd, "w", encoding="utf-8", buffering=_BUFFER)
        self._done = False

    def write(self, text: str) -> None:
        try:
            self.file.write(text)
        except OSError as exc:
            raise self._error(exc) from exc

    def close_for_reading(self) -> None:
        """Flush and close the file, so that :attr:`tmp_path` can be read back."""
        try:
            self.file.close()
        except OSError as exc:
            raise self._error(exc) from exc

    def commit(self) -> None:
        """Close and rename into place (replacing an existing file)."""
        try:
            self.file.close()
            os.chmod(self.tmp_path, 0o666 & ~_umask())
            os.replace(self.tmp_path, self.path)
        except OSError as exc:
            raise self._error(exc) from exc
        self._done = True

    def discard(self) -> None:
        """Delete the temporary file (closing it first); ``path`` is not touched.

        The delete happens even if the close fails: closing flushes the buffer,
        which fails on a full disk, and the file must not stay behind then.
        """
        if self._done:
            return
        self._done = True
        try:
            self.file.close()
        except OSError:
            pass  # the data is being thrown away; only the deletion matters
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def _error(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write {self._name_in_errors}: {describe_os_error(exc)}")

    def __enter__(self) -> AtomicTextFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()


class CocoWriter:
    """Stream a COCO instances JSON: header, then images and annotations as they come.

    Output layout: ``{"info": ..., "licenses": [], "categories": [...],
    "images": [...], "annotations": [...]}``. Records are passed in already
    encoded as compact JSON strings.
    """

    def __init__(self, path: str | Path, info: dict, categories: list[dict]):
        self._out = AtomicTextFile(path)
        try:
            self._anns = AtomicTextFile(Path(path).parent / f"{Path(path).name}.annotations", part_of=path)
        except BaseException:
            self._out.discard()
            raise
        header = {"info": info, "licenses": [], "categories": categories}
        try:
            self._out.write(json.dumps(header, ensure_ascii=False)[:-1] + ',"images":[\n')
        except BaseException:
            self.discard()
            raise
        self._n_images = 0
        self._n_annotations = 0

    def add_image(self, image_json: str) -> None:
        self._out.write(image_json if self._n_images == 0 else ",\n" + image_json)
        self._n_images += 1

    def add_annotation(self, annotation_json: str) -> None:
        self._anns.write(annotation_json if self._n_annotations == 0 else ",\n" + annotation_json)
        self._n_annotations += 1

    def commit(self) -> None:
        """Finish the JSON and rename it into place."""
        self._out.write('\n],"annotations":[\n')
        self._anns.close_for_reading()
        try:
            with open(self._anns.tmp_path, encoding="utf-8") as f:
                shutil.copyfileobj(f, self._out.file, _BUFFER)
        except OSError as exc:
            raise self._out._error(exc) from exc
        self._out.write("\n]}\n")
        self._out.commit()
        self._anns.discard()

    def discard(self) -> None:
        try:
            self._out.discard()
        finally:
            self._anns.discard()

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
