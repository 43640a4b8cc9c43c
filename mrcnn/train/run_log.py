"""A run folder's record of its epochs: checkpoints, ``training_log.csv`` and TensorBoard steps, kept in agreement.

After every epoch :class:`RunLog` is told in this order (by ``callbacks.EpochRecorder``, with Ctrl-C and
SIGTERM held back): the checkpoint is written with the epoch's row inside it (a JSON attribute) and
renamed into place; the CSV is rewritten with the new row (atomically); the TensorBoard step is added.
So a crash, ``kill -9`` included, can leave the logs one step behind a checkpoint, never ahead of one,
and :meth:`RunLog.reconcile` (run when training starts in a folder, i.e. on resume) writes the missing
rows and steps again from the rows the checkpoints carry, drops rows of epochs that have no checkpoint,
and removes temporary files that dead processes left. The CSV row and TensorBoard step of epoch N
(counted from 1) then exist exactly when ``mask_rcnn_<name>_<N>.h5`` does. An epoch stopped by a NaN
gets a row with status ``nan`` and no checkpoint; an epoch cut short by a time budget, status ``partial``.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from mrcnn.io.files import atomic_write, remove_dead_temporary_files
from mrcnn.io.h5_legacy import WeightsError, read_notes
from mrcnn.train.checkpoints import checkpoint_epoch

log = logging.getLogger(__name__)

CSV_FILE = "training_log.csv"
STATUS_OK, STATUS_PARTIAL, STATUS_NAN = "ok", "partial", "nan"
RECORD_NOTE = "epoch_record"  # the checkpoint's attribute holding its row (h5_legacy notes)


def csv_columns(loss_names) -> tuple[str, ...]:
    """Columns of training_log.csv: the epoch number (= the checkpoint's NNNN), its status, the layer group,
    the running means of the losses over the epoch, the validation losses, the learning rate, the number of
    unreadable images skipped so far, the seconds."""
    return ("epoch", "status", "layers", "loss", *loss_names, "val_loss",
            *(f"val_{name}" for name in loss_names), "learning_rate", "skipped_images", "seconds")


class RunLog:
    """The CSV and TensorBoard record of one run folder (see the module docstring)."""

    def __init__(self, log_dir, name: str, loss_names):
        self.log_dir = Path(log_dir)
        self.name = name
        self.columns = csv_columns(loss_names)
        self.csv_path = self.log_dir / CSV_FILE
        self._writers = {}

    # ------------------------------------------------------------ CSV
    def read_rows(self) -> list[dict]:
        """The CSV's rows (all values as strings); none when the file is missing."""
        if not self.csv_path.is_file():
            return []
        with self.csv_path.open(newline="") as f:
            return [row for row in csv.DictReader(f) if row.get("epoch", "").isdigit()]

    def _write_rows(self, rows: list[dict]) -> None:
        columns = list(self.columns) + [c for row in rows for c in row if c not in self.columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(columns)), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: int(r["epoch"])))
        payload = text.getvalue().encode("utf-8")
        atomic_write(self.csv_path, lambda f: f.write(payload))

    def append_row(self, row: dict) -> None:
        """Add one epoch's row (replacing an older row of the same epoch and status), rewriting the file atomically."""
        row = {k: v for k, v in row.items() if v is not None}
        rows = [r for r in self.read_rows()
                if not (int(r["epoch"]) == int(row["epoch"]) and r.get("status") == row.get("status"))]
        self._write_rows(rows + [row])

    # ------------------------------------------------------------ TensorBoard
    def _writer(self, kind: str):
        import tensorflow as tf

        if kind not in self._writers:
            self._writers[kind] = tf.summary.create_file_writer(str(self.log_dir / kind))
        return self._writers[kind]

    def write_tensorboard(self, row: dict) -> None:
        """The epoch's numbers as TensorBoard scalars at step = epoch: ``train/epoch_<name>`` and
        ``validation/epoch_<name>`` (Keras' layout, so TensorBoard shows them as it shows Keras runs)."""
        import tensorflow as tf

        step = int(row["epoch"])
        numbers = {k: float(v) for k, v in row.items()
                   if k not in ("epoch", "seconds", "skipped_images") and _is_number(v)}
        by_kind = {"train": {k: v for k, v in numbers.items() if not k.startswith("val_")},
                   "validation": {k[len("val_"):]: v for k, v in numbers.items() if k.startswith("val_")}}
        for kind, values in by_kind.items():
            if not values:
                continue
            writer = self._writer(kind)
            with writer.as_default():
                for tag, value in values.items():
                    tf.summary.scalar(f"epoch_{tag}", value, step=step)
            writer.flush()

    def tensorboard_steps(self) -> set[int]:
        """The steps of ``train/epoch_loss`` in the folder's event files (a record cut by a crash ends the read)."""
        import tensorflow as tf

        steps = set()
        for path in sorted((self.log_dir / "train").glob("events.out.tfevents.*")):
            try:
                for record in tf.data.TFRecordDataset(str(path)):
                    event = tf.compat.v1.Event.FromString(record.numpy())
                    if any(v.tag == "epoch_loss" for v in event.summary.value):
                        steps.add(int(event.step))
            except tf.errors.DataLossError:
                log.warning("%s ends with a cut record (a crash while it was written)", path)
        return steps

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ------------------------------------------------------------ agreement
    def checkpoint_epochs(self) -> dict[int, Path]:
        epochs = {p: checkpoint_epoch(p.name, self.name) for p in self.log_dir.iterdir()}
        return {epoch: p for p, epoch in epochs.items() if epoch is not None}

    def reconcile(self) -> dict:
        """Make the CSV and TensorBoard agree with the checkpoints on disk (see the module docstring).

        Returns what was done: {"rows_added": [...], "rows_dropped": [...], "steps_added": [...],
        "temporary_files_removed": [...]}.
        """
        removed = remove_dead_temporary_files(self.log_dir)
        checkpoints = self.checkpoint_epochs()
        rows = self.read_rows()
        kept = [r for r in rows if r.get("status") == STATUS_NAN or int(r["epoch"]) in checkpoints]
        dropped = sorted(int(r["epoch"]) for r in rows if r not in kept)
        have = {int(r["epoch"]) for r in kept if r.get("status") != STATUS_NAN}
        added, records = [], {}
        for epoch in sorted(set(checkpoints) - have):
            record = _record_of(checkpoints[epoch])
            if record is not None:
                records[epoch] = record
                kept.append(record)
                added.append(epoch)
        if added or dropped:
            self._write_rows(kept)
        steps_added = []
        missing_steps = sorted(set(checkpoints) - self.tensorboard_steps())
        for epoch in missing_steps:
            record = records.get(epoch) or _record_of(checkpoints[epoch])
            if record is not None:
                self.write_tensorboard(record)
                steps_added.append(epoch)
        done = {"rows_added": added, "rows_dropped": dropped, "steps_added": steps_added,
                "temporary_files_removed": removed}
        if any(done.values()):
            log.warning("run folder %s repaired after an interrupted run: %s", self.log_dir, done)
        return done


def _record_of(checkpoint: Path) -> dict | None:
    try:
        return read_notes(checkpoint).get(RECORD_NOTE)
    except WeightsError:
        return None


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
