"""Write output files atomically, and the COCO JSON as a stream.

Every output is first written to a hidden temporary file in the destination
folder and renamed into place only when complete (``os.replace`` is atomic on
one filesystem): a failed or interrupted run leaves no half-written file and
never clobbers an existing one.

:class:`CocoWriter` writes a COCO instances file record by record, so memory
does not grow with the split. COCO keeps images and annotations in two
separate arrays; the writer streams images into the output's temporary file
and annotations into a second temporary file, and appends the second to the
first when the output is committed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

_BUFFER = 1 << 20  # bytes of write buffer per file


def with_id(annotation_json: str, ann_id: int) -> str:
    """Insert ``"id": ann_id`` as the first key of a non-empty compact JSON object ``{"image_id":...}``."""
    return f'{{"id":{ann_id},{annotation_json[1:]}'


class AtomicTextFile:
    """A text file written to ``<dir>/.<name>.<random>.tmp`` and renamed to ``path`` on commit.

    Use as a context manager: if the block raises, or :meth:`commit` was not
    called, the temporary file is removed and ``path`` is left untouched.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self.tmp_path = Path(tmp)
        self.file = os.fdopen(fd, "w", encoding="utf-8", buffering=_BUFFER)
        self._done = False

    def write(self, text: str) -> None:
        self.file.write(text)

    def commit(self) -> None:
        """Close and rename into place (replacing an existing file)."""
        self.file.close()
        os.chmod(self.tmp_path, 0o666 & ~_umask())
        os.replace(self.tmp_path, self.path)
        self._done = True

    def discard(self) -> None:
        """Close and delete the temporary file; ``path`` is not touched."""
        if not self._done:
            self.file.close()
            self.tmp_path.unlink(missing_ok=True)
            self._done = True

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
        self._anns = AtomicTextFile(Path(path).parent / f"{Path(path).name}.annotations")
        header = {"info": info, "licenses": [], "categories": categories}
        self._out.write(json.dumps(header, ensure_ascii=False)[:-1] + ',"images":[\n')
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
        self._anns.file.close()
        with open(self._anns.tmp_path, encoding="utf-8") as f:
            shutil.copyfileobj(f, self._out.file, _BUFFER)
        self._out.write("\n]}\n")
        self._out.commit()
        self._anns.discard()

    def discard(self) -> None:
        self._out.discard()
        self._anns.discard()

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
