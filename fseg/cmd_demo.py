"""``fseg demo``: the whole pipeline offline, on data the product generates itself."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from fseg.cli_util import EXIT_USAGE, CommandError

HELP = """Run the whole pipeline on a synthetic DeepFashion2 split, offline.

\b
Steps (each printed as it runs; everything lands in --out):
  1. fseg synth     a training and a validation split of garment images
  2. fseg convert   both splits to COCO (train.json, val.json)
  3. fseg train     configs/synthetic.toml from random weights, for about --minutes
  4. fseg evaluate  COCO box, mask and landmark AP on the validation split
  5. fseg predict   overlays and crops of a few validation images

Needs no network and no files but the repository's. With the defaults it takes
about 10 minutes; what the model learns in that time depends on the CPU: on 2
cores of a 2026 Intel Xeon, mask AP50 0.84-0.94 and landmark AP 0.49-0.63 over
four runs, on 2 cores of an AMD EPYC 0.81-0.87 and 0.47-0.52 over three
(docs/BENCHMARKS.md). --minutes 30 trains three times longer.

\b
Example:
  fseg demo --out demo_out
"""


@click.command(help=HELP, short_help="Run synth -> convert -> train -> evaluate -> predict offline.")
@click.option("--out", "out_dir", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for every output of the demo (must be empty or absent, unless --force).")
@click.option("--minutes", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="Wall-time budget of the whole demo; training gets what the other steps leave.")
@click.option("--train-images", type=click.IntRange(min=4), default=1000, show_default=True,
              help="Images in the generated training split.")
@click.option("--val-images", type=click.IntRange(min=2), default=100, show_default=True,
              help="Images in the generated validation split.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Model config [default: configs/synthetic.toml].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data and the training.")
@click.option("--force", is_flag=True, help="Replace the contents of --out.")
@click.pass_context
def demo(ctx, out_dir, minutes, train_images, val_images, config_path, seed, force):
    from fseg import runtime

    # The steps are the CLI's own commands, looked up by name in the `fseg` group.
    synth, convert, train, evaluate, predict = (ctx.parent.command.get_command(ctx, name) for name in
                                                ("synth", "convert", "train", "evaluate", "predict"))
    start = time.monotonic()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise CommandError(f"{out} is not empty; choose another --out or add --force", EXIT_USAGE)
    out.mkdir(parents=True, exist_ok=True)
    config = Path(config_path) if config_path else runtime.config_path("synthetic.toml")

    step(1, "generate a synthetic DeepFashion2 training and validation split")
    ctx.invoke(synth, out_dir=out / "train", num_images=train_images, seed=seed, min_side=160, max_side=320,
               force=True)
    ctx.invoke(synth, out_dir=out / "val", num_images=val_images, seed=seed + 1, min_side=160, max_side=320,
               force=True)

    step(2, "convert both splits to COCO")
    ctx.invoke(convert, split_dir=str(out / "train"), out_path=str(out / "train.json"), force=True)
    ctx.invoke(convert, split_dir=str(out / "val"), out_path=str(out / "val.json"), force=True)

    remaining = minutes * 60 - (time.monotonic() - start)
    # Evaluation and prediction after training took 20-30 s on 2 cores (100 validation images).
    train_seconds = max(30.0, remaining - 35.0)
    step(3, f"train {config} from random weights for {train_seconds / 60:.1f} minutes")
    logs = out / "logs"
    ctx.invoke(train, annotations=str(out / "train.json"), images=str(out / "train" / "image"),
               weights="none", config_path=str(config), logs_dir=str(logs), seed=seed,
               time_limit=train_seconds / 60)

    weights = newest_checkpoint(logs, config)

    step(4, f"evaluate {weights.name} on the validation split (COCO AP)")
    ctx.invoke(evaluate, annotations=Path(out / "val.json"), images_dir=Path(out / "val" / "image"),
               weights=str(weights), config_path=Path(config), out_dir=out / "evaluation")

    step(5, "predict a few validation images")
    sample = sorted((out / "val" / "image").iterdir())[:6]
    ctx.invoke(predict, inputs=tuple(str(p) for p in sample), out_dir=out / "predictions", weights=str(weights),
               config_path=Path(config), crops=True)

    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    click.echo(summary(out, metrics, time.monotonic() - start))


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def newest_checkpoint(logs: Path, config: Path) -> Path:
    """The checkpoint the demo's training run ended with."""
    from fseg import runtime

    named, _ = runtime.load_config(config)
    found = runtime.find_last(logs, named.NAME)
    if found is None:
        raise CommandError(f"training wrote no checkpoint under {logs}")
    return found


def step(number: int, text: str) -> None:
    click.secho(f"\n[{number}/5] {text}", bold=True, err=True)


def summary(out: Path, metrics: dict, seconds: float) -> str:
    segm = metrics.get("segm") or {}
    bbox = metrics.get("bbox") or {}
    landmarks = metrics.get("keypoints")
    lines = [
        "",
        f"Demo finished in {seconds / 60:.1f} minutes.",
        f"  mask AP50 {_num(segm.get('AP50'))}   mask AP {_num(segm.get('AP'))}   "
        f"box AP50 {_num(bbox.get('AP50'))}   (synthetic validation split)",
        *([f"  landmark AP {_num(landmarks.get('AP'))}   landmark AP50 {_num(landmarks.get('AP50'))}   "
           f"(COCO keypoint AP, DeepFashion2's OKS sigmas)"] if landmarks else []),
        f"  data:        {out / 'train'}, {out / 'val'}, {out / 'train.json'}, {out / 'val.json'}",
        f"  checkpoints: {out / 'logs'}",
        f"  metrics:     {out / 'evaluation' / 'metrics.json'}",
        f"  predictions: {out / 'predictions'}",
    ]
    return "\n".join(lines)
