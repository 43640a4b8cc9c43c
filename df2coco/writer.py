"""Write output files atomically, and the COCO JSON as a stream.

Every output is first written to a hidden temporary file in the destination
folder, ``.<name>.<pid>.<random>.tmp`` (:mod:`df2coco.leftovers` removes those of
killed runs), and put into place only when complete: a failed or interrupted run
leaves no half-written file and never clobbers an existing one. The temporary
file is deleted on every failure path, even when closing it fails (a full disk
makes the final flush fail).

Putting into place: with ``replace=True``, ``os.replace`` (atomic on one
filesystem), once ``lstat`` has shown the name to be free or a regular file (a
device such as ``/dev/null``, a FIFO, a socket, a symbolic link or a folder is
never replaced; the commit fails). With
``replace=False``, ``os.link`` then unlink of the temporary name: the output is
created only if nothing has that name, so a file another run wrote meanwhile is
never replaced. On a file system without hard links, the name is checked just
before ``os.rename`` instead (a window of microseconds instead of the whole run).

:class:`CocoWriter` writes a COCO instances file record by record, so memory
does not grow with the split. COCO keeps images and annotations in two
separate arrays; the writer streams images into the output's temporary file
and annotations into a second temporary file, and appends the second to the
first when the output is committed.

Any ``OSError`` while writing (ENOSPC, EROFS, EACCES, EIO, ...) is raised as
:class:`df2coco.errors.OutputError` with a one-line message naming the output.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from df2coco.errors import OutputError
from df2coco.leftovers import temporary_file_prefix

_BUFFER = 1 << 20  # bytes of write buffer per file
# os.link errors meaning the file system has no hard links (FAT, exFAT, some FUSE and network mounts)
_NO_HARD_LINKS = frozenset((errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV))


def with_id(annotation_json: str, ann_id: int) -> str:
    """Insert ``"id": ann_id`` as the first key of a non-empty compact JSON object ``{"image_id":...}``."""
    return f'{{"id":{ann_id},{annotation_json[1:]}'


def describe_os_error(exc: OSError) -> str:
    """``"No space left on device"`` etc.: the OS's words for an error, without the errno number."""
    return exc.strerror or str(exc) or type(exc).__name__


class AtomicTextFile:
    """A text file written to ``<dir>/.<name>.<pid>.<random>.tmp`` and put in place as ``path`` on commit.

    Use as a context manager: if the block raises, or :meth:`commit` was not
    called, the temporary file is removed and ``path`` is left untouched.

    Raises:
      OutputError: the temporary file cannot be created or written, or it cannot be put in place
        (``path`` is not a regular file; without ``replace``, ``path`` exists).
    """

    def __init__(self, path: str | Path, part_of: str | Path | None = None, replace: bool = True):
        """``part_of``: the output this file is a part of, named in errors instead of ``path``.

        ``replace``: on commit, replace an existing regular file ``path`` (False: fail if ``path`` exists).
        """
        self.path = Path(path)
        self._name_in_errors = Path(part_of) if part_of is not None else self.path
        self._replace = replace
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=temporary_file_prefix(self.path), suffix=".tmp")
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
        """Close and put in place: replace an existing regular file, or (``replace=False``) only a missing one."""
        try:
            self.file.close()
            os.chmod(self.tmp_path, 0o666 & ~_umask())
            if self._replace:
                self._refuse_non_regular_file()
                os.replace(self.tmp_path, self.path)
            else:
                self._create_without_replacing()
        except OSError as exc:
            raise self._error(exc) from exc
        self._done = True

    def _refuse_non_regular_file(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            raise OutputError(f"{self._name_in_errors} is not a regular file: not replaced")

    def _create_without_replacing(self) -> None:
        """Give the temporary file the name ``path`` only if no file has it (hard link, then unlink)."""
        try:
            os.link(self.tmp_path, self.path)
        except FileExistsError:
            raise self._appeared() from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if os.path.lexists(self.path):  # no hard links here: check, then rename at once
                raise self._appeared() from None
            os.rename(self.tmp_path, self.path)
            return
        try:
            os.unlink(self.tmp_path)
        except OSError:
            pass  # the output is in place; a later run removes the second name (df2coco.leftovers)

    def _appeared(self) -> OutputError:
        return OutputError(f"{self._name_in_errors} was created by something else while this run wrote it "
                           "(another run?); it was left as it is (use --force to replace it)")

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


def annotations_part(path: Path) -> Path:
    """``<path>.annotations``: the name after which :class:`CocoWriter` names its annotations' temporary file."""
    return path.with_name(f"{path.name}.annotations")


class CocoWriter:
    """Stream a COCO instances JSON: header, then images and annotations as they come.

    Output layout: ``{"info": ..., "licenses": [], "categories": [...],
    "images": [...], "annotations": [...]}``. Records are passed in already
    encoded as compact JSON strings.
    """

    def __init__(self, path: str | Path, info: dict, categories: list[dict], replace: bool = True):
        """``replace``: on commit, replace an existing regular file ``path`` (False: fail if ``path`` exists)."""
        self._out = AtomicTextFile(path, replace=replace)
        try:
            self._anns = AtomicTextFile(annotations_part(Path(path)), part_of=path)
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
        try:  # bytes to bytes: the annotations are not decoded and encoded again
            self._out.file.flush()
            with open(self._anns.tmp_path, "rb") as f:
                shutil.copyfileobj(f, self._out.file.buffer, _BUFFER)
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
