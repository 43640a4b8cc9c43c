"""What ``fseg predict`` writes, streamed as images finish, so memory stays flat and a run can be resumed.

    <out>/<stem>.png|.jpg     the overlay of each image (JPEG for JPEG inputs)
    <out>/crops/...           with --crops: one RGBA cut-out per detection
    <out>/.predict-journal    one JSON line per finished image: its COCO image entry and result records,
                              appended and flushed as the image finishes
    <out>/predictions.json    the result records, assembled from the journal at the end (atomically)
    <out>/images.json         the images and categories those records refer to (atomically)

The journal is removed once both JSON files are in place. ``--resume`` continues an interrupted run: the
images already in the journal are not read again (a line cut by a crash is dropped, and its image is
redone). Images are matched by their resolved path (``photos/a.jpg`` and ``/home/me/photos/a.jpg`` are one
image), and a resume with other inputs than the journal's is refused (:func:`check_resume`), since image
ids and output names are given per run. The journal is locked while a run writes, so a second run into the
same folder stops at once.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fseg.cli_util import EXIT_USAGE, CommandError

PREDICTIONS_FILE = "predictions.json"
IMAGES_FILE = "images.json"
CROPS_DIR = "crops"
JOURNAL_FILE = ".predict-journal"


@dataclass
class InputImage:
    """One input photo and the names of its outputs."""

    path: Path
    image_id: int
    out_stem: str  # unique among the run's inputs (``x``, ``x_2`` when two inputs are called x.*)
    overlay_name: str  # ``<out_stem>.jpg`` for JPEG inputs, ``<out_stem>.png`` otherwise


def crop_file_name(stem: str, rank: int, class_name: str) -> str:
    """``<stem>_<rank>_<class>.png`` with the class name reduced to [a-z0-9_]: ``test_1_short_sleeve_top.png``."""
    slug = re.sub(r"[^0-9a-z]+", "_", class_name.lower()).strip("_") or "object"
    return f"{stem}_{rank}_{slug}.png"


def counted(n: int, noun: str) -> str:
    """``"1 image"``, ``"3 images"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_output_names(out_dir: Path, crops: bool) -> None:
    """Fail (exit 2) before any work when an output name is taken by something of the wrong kind."""
    for name in (PREDICTIONS_FILE, IMAGES_FILE, JOURNAL_FILE):
        if (out_dir / name).is_dir():
            raise CommandError(f"cannot write {out_dir / name}: a folder of that name exists", EXIT_USAGE)
    if crops and (out_dir / CROPS_DIR).exists() and not (out_dir / CROPS_DIR).is_dir():
        raise CommandError(f"cannot write crops into {out_dir / CROPS_DIR}: a file of that name exists", EXIT_USAGE)


def input_key(item: InputImage) -> str:
    """What identifies an input across runs: its resolved path (one image however it was spelled)."""
    return str(item.path.resolve())


def check_resume(done: dict[str, int], images: Sequence[InputImage], out_dir: Path) -> None:
    """Refuse (exit 2) a resume whose inputs are not the interrupted run's.

    ``done`` maps the journal's images (resolved paths) to their image ids. Every one of them must be among
    ``images`` with the same id: image ids and output names are given per run (by the file names' numbers or the
    input order), so other inputs would mix two numberings in one predictions.json.
    """
    planned = {input_key(item): item.image_id for item in images}
    strangers = [key for key in done if key not in planned]
    if strangers:
        raise CommandError(f"--resume: {out_dir}/ holds {counted(len(strangers), 'finished image')} that "
                           f"{'is' if len(strangers) == 1 else 'are'} not among these inputs (first: {strangers[0]}); "
                           f"give the interrupted run's inputs, or run without --resume to start over", EXIT_USAGE)
    renumbered = [key for key, image_id in done.items() if planned[key] != image_id]
    if renumbered:
        raise CommandError(f"--resume: these inputs number the images differently from the interrupted run "
                           f"(e.g. {renumbered[0]}); give its inputs in the same order (a folder with the same "
                           f"files), or run without --resume", EXIT_USAGE)


class PredictionWriter:
    """Writes each image's outputs as it finishes and the JSON files at the end (see the module docstring)."""

    def __init__(self, out_dir: Path, class_names: Sequence[str], *, overlays: bool, crops: bool, resume: bool):
        self.out_dir = out_dir
        self.class_names = list(class_names)
        self.overlays = overlays
        self.crops = crops
        self.journal_path = out_dir / JOURNAL_FILE
        self.journal = self.journal_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.journal, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.journal.close()
            raise CommandError(f"another fseg predict is writing to {out_dir}/ (its journal is locked); "
                               f"wait for it or choose another --out", EXIT_USAGE) from None
        self.done: dict[str, int] = {}  # resolved input path -> image id, of the images already finished (resume)
        self.images = self.records = self.crop_count = 0
        if resume:
            self._read_journal()
        else:
            self.journal.truncate(0)

    def _read_journal(self) -> None:
        """Count and remember the finished images; drop a last line cut by a crash."""
        self.journal.seek(0)
        good_end = 0
        for line in self.journal:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            self.done[entry.get("key") or str(Path(entry["image"]["path"]).resolve())] = entry["image"]["id"]
            self.images += 1
            self.records += len(entry["records"])
            self.crop_count += sum(1 for r in entry["records"] if r.get("crop"))
            good_end += len(line.encode("utf-8"))
        self.journal.truncate(good_end)
        self.journal.seek(0, 2)

    def add(self, item: InputImage, image, detections: dict) -> None:
        """Save the outputs of one image. ``image`` [H, W, 3] uint8 RGB; ``detections`` as MaskRCNN.detect gives."""
        from mrcnn.eval.results import detections_to_records, images_record
        from mrcnn.io.images import write_image
        from mrcnn.io.overlay import draw_instances

        records = detections_to_records(detections, item.image_id, self.class_names, file_name=item.path.name)
        if self.overlays:
            overlay = draw_instances(image, detections["rois"], detections["masks"], detections["class_ids"],
                                     self.class_names, detections["scores"], landmarks=detections.get("landmarks"))
            write_image(self.out_dir / item.overlay_name, overlay)
        if self.crops:
            self._write_crops(item, image, detections, records)
        height, width = image.shape[:2]
        entry = {"key": input_key(item),
                 "image": images_record(item.image_id, item.path.name, height, width, path=str(item.path),
                                        overlay=item.overlay_name if self.overlays else None),
                 "records": records}
        self.journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self.journal.flush()
        self.images += 1
        self.records += len(records)

    def _write_crops(self, item: InputImage, image, detections: dict, records: list[dict]) -> None:
        """One RGBA PNG per detection with a non-empty mask; its name goes into the record's "crop"."""
        from mrcnn.io.images import write_image
        from mrcnn.io.overlay import cutout_rgba

        crops_dir = self.out_dir / CROPS_DIR
        crops_dir.mkdir(exist_ok=True)
        for k, record in enumerate(records):
            mask = detections["masks"][:, :, k]
            box = detections["rois"][k]
            if not mask[box[0]:box[2], box[1]:box[3]].any():
                record["crop"] = None
                continue
            name = crop_file_name(item.out_stem, k + 1, record["category_name"])
            write_image(crops_dir / name, cutout_rgba(image, mask, box))
            record["crop"] = f"{CROPS_DIR}/{name}"
            self.crop_count += 1

    def _entries(self):
        self.journal.flush()
        with self.journal_path.open(encoding="utf-8") as journal:
            for line in journal:
                yield json.loads(line)

    def finish(self, info: dict) -> None:
        """Assemble predictions.json and images.json from the journal (streamed, atomically), then remove it."""
        from mrcnn.eval.results import categories_records
        from mrcnn.io.files import atomic_write

        def write_records(f):
            f.write(b"[")
            first = True
            for entry in self._entries():
                for record in entry["records"]:
                    f.write((b"" if first else b",") + json.dumps(record, separators=(",", ":")).encode())
                    first = False
            f.write(b"]")

        def write_images(f):
            meta = {"description": "fseg predict", "date_created": dt.datetime.now().isoformat(timespec="seconds"),
                    **info}
            f.write(b'{"info":' + json.dumps(meta).encode() + b',"images":[')
            for k, entry in enumerate(self._entries()):
                f.write((b"," if k else b"") + json.dumps(entry["image"], separators=(",", ":")).encode())
            f.write(b'],"categories":' + json.dumps(categories_records(self.class_names)).encode()
                    + b',"annotations":[]}')

        atomic_write(self.out_dir / PREDICTIONS_FILE, write_records)
        atomic_write(self.out_dir / IMAGES_FILE, write_images)
        self.close(remove=True)

    def close(self, remove: bool = False) -> None:
        if not self.journal.closed:
            if remove:
                self.journal_path.unlink(missing_ok=True)
            self.journal.close()

    def summary(self) -> str:
        """One line: what was written where, e.g. ``6 images, 9 detections -> Result/ (...)``."""
        written = [PREDICTIONS_FILE, IMAGES_FILE]
        if self.overlays:
            written.append(counted(self.images, "overlay"))
        if self.crops:
            written.append(f"{counted(self.crop_count, 'crop')} in {CROPS_DIR}/")
        return (f"{counted(self.images, 'image')}, {counted(self.records, 'detection')} -> "
                f"{self.out_dir}/ ({', '.join(written)})")
