#!/usr/bin/env python3
"""Training benchmarks: the learning benchmark, the training step against torchvision, the input pipeline.

    python3 scripts/bench_train.py --learning [--minutes 20] [--config configs/synthetic.toml]
    python3 scripts/bench_train.py --step [--config configs/synthetic.toml] [--torch]
    python3 scripts/bench_train.py --pipeline

--learning (issue 4's learning test, full version):
  1. generates a synthetic DeepFashion2 training split and a held-out validation split with the
     product's generator (``df2coco.synthetic``, different seeds; cached under --cache) and converts
     both with ``df2coco.convert``;
  2. trains the config from random weights (``MaskRCNN(mode="training").train``, as
     ``fseg train --weights none`` does) for --minutes of wall time, model building and graph tracing
     included; the config's TRAIN_SCHEDULE is mapped onto the clock (a stage ending at epoch e of E
     ends at e/E of the time), so its shape holds whatever the machine's speed;
  3. detects on every validation image with ``MaskRCNN(mode="inference")`` (DETECTION_MIN_CONFIDENCE 0,
     as COCO evaluation does) and scores the masks and boxes with pycocotools (``mrcnn.eval.coco_eval``).
  With the landmark head (configs/synthetic.toml has it on) also landmark AP (COCO keypoint AP,
  DeepFashion2's OKS sigmas); ``--set 'ROI_HEADS=["mask"]'`` trains without it, for comparison.
  Target: mask AP50 >= 0.5 (landmark AP >= 0.5). Prints and writes a JSON summary (``--out``).

--step: seconds per training step (images/s) of our model at the config's image size, batch and ROIs
  per image, on one fixed batch (so the input pipeline is not measured); with --torch also
  torchvision's Mask R-CNN (resnet50-FPN, random weights, BatchNorm trained, same image size, batch,
  ROIs per image, positive fraction and threads). torch/torchvision are a benchmark-only dependency:
  ``pip install torch==2.14.1 torchvision==0.29.1``.

--pipeline: images/s of the training input pipeline alone (``mrcnn.data.build_training_dataset``,
  augmentation on), to compare with the step.

Every measurement prints ``uptime`` (the machine is shared). Results go into docs/BENCHMARKS.md, section Training.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_CONFIG = REPO / "configs" / "synthetic.toml"
DEFAULT_CACHE = Path.home() / ".cache" / "fseg" / "bench"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------ data
def ensure_split(cache: Path, num_images: int, seed: int, min_side: int, max_side: int) -> tuple[Path, Path]:
    """(COCO annotations, image folder) of a generated and converted split, cached by its parameters."""
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split

    split = cache / f"synth_{num_images}_s{seed}_{min_side}-{max_side}_kp"  # with keypoints (shape-tied landmarks)
    annotations = split.with_suffix(".json")
    if not annotations.is_file():
        log(f"generating {num_images} images (seed {seed}) into {split}")
        generate_split(split, num_images, seed=seed, min_side=min_side, max_side=max_side)
        convert_split(split, annotations, force=True)
    return annotations, split / "image"


def head_fields(config):
    """The instance fields the config's ROI heads train on (the landmark head's "keypoints")."""
    from mrcnn.modeling.roi_heads import build_roi_heads, instance_fields

    return instance_fields(build_roi_heads(config))


def load_dataset(annotations: Path, images: Path, config):
    from mrcnn.data.coco import CocoDataset

    dataset = CocoDataset()
    dataset.load_coco(annotations, images, class_names=config.CLASS_NAMES,
                      annotation_fields=[field.name for field in head_fields(config)])
    dataset.prepare()
    return dataset


# ------------------------------------------------------------------ learning
def step_counter():
    """A Keras callback counting training steps (the schedule runner reports epochs, not steps)."""
    import keras

    class StepCounter(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1

    return StepCounter()


def train_from_scratch(config, train_set, minutes: float, logs_dir: Path, seed: int) -> dict:
    """Trains the config from random weights with its TRAIN_SCHEDULE mapped onto ``minutes`` of wall time
    (``mrcnn.train.schedule.run_schedule``, as ``fseg train --time-limit`` and ``fseg demo`` do).

    Returns a summary.
    """
    from mrcnn.model import MaskRCNN
    from mrcnn.train.schedule import run_schedule
    from mrcnn.train.threads import set_threads_per_op

    if not set_threads_per_op(config.TRAIN_THREADS_PER_OP):  # as fseg train does
        log(f"TRAIN_THREADS_PER_OP {config.TRAIN_THREADS_PER_OP} not applied: TensorFlow already started")
    start = time.time()
    model = MaskRCNN(mode="training", config=config, model_dir=logs_dir)
    counter = step_counter()
    rate_changes = []

    def announce(stage, learning_rate, epoch):
        rate_changes.append((round(time.time() - start, 1), learning_rate))
        log(f"stage {stage['layers']} at learning rate {learning_rate:g} after {time.time() - start:.0f} s; {uptime()}")

    log(f"schedule {config.TRAIN_SCHEDULE} over {minutes} min, {config.STEPS_PER_EPOCH} steps per epoch; {uptime()}")
    summary = run_schedule(model, train_set, None, config.TRAIN_SCHEDULE, time_limit=60 * minutes, announce=announce,
                           custom_callbacks=[counter], seed=seed, verbose=2)
    weights_path = logs_dir / "final.h5"
    model.save_weights(weights_path)
    return {"train_seconds": time.time() - start, "epochs": summary.final_epoch, "steps": counter.steps,
            "images_seen": counter.steps * config.BATCH_SIZE, "rate_changes": rate_changes,
            "stopped_by_budget": summary.stopped_by_budget, "weights": str(weights_path)}


def evaluate_masks(config, weights_path: Path, annotations: Path, images: Path) -> dict:
    """COCO bbox, segm (and, with the landmark head, keypoint) metrics of the weights on a converted split."""
    from mrcnn.config import with_overrides
    from mrcnn.eval.results import detections_to_records
    from mrcnn.eval.coco_eval import evaluate
    from mrcnn.eval.keypoint_eval import category_slices
    from mrcnn.eval.results import load_ground_truth
    from mrcnn.io.images import read_image_rgb
    from mrcnn.model import MaskRCNN

    config = with_overrides(config, IMAGES_PER_GPU=1, GPU_COUNT=1, DETECTION_MIN_CONFIDENCE=0.0)
    model = MaskRCNN(mode="inference", config=config, model_dir=weights_path.parent)
    model.load_weights(str(weights_path), by_name=True)
    landmarks = "landmarks" in config.ROI_HEADS
    gt = load_ground_truth(annotations, keypoints=landmarks)
    class_names = config.class_names()
    records = []
    start = time.time()
    for image_id in sorted(gt.imgs):
        image = read_image_rgb(images / gt.imgs[image_id]["file_name"])
        detections = model.detect([image])[0]
        records += detections_to_records(detections, image_id, class_names)
    seconds = time.time() - start
    slices = category_slices(config.LANDMARK_COUNTS) if landmarks else None
    metrics = evaluate(gt, records, keypoints=landmarks, keypoint_slices=slices)
    return {"detect_seconds": seconds, "images": len(gt.imgs), "detections": len(records),
            "segm": metrics["segm"], "bbox": metrics["bbox"], "keypoints": metrics["keypoints"],
            "per_category_segm_AP50": {c["name"]: c["segm"]["AP50"] for c in metrics["per_category"]}}


def run_learning(args) -> dict:
    config = config_with_overrides(args)
    sides = (args.min_side, args.max_side)
    train_json, train_images = ensure_split(args.cache, args.train_images, args.train_seed, *sides)
    val_json, val_images = ensure_split(args.cache, args.val_images, args.val_seed, *sides)
    train_set = load_dataset(train_json, train_images, config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"training {args.config} on {train_set.num_images} images for at most {args.minutes} min; {uptime()}")
    training = train_from_scratch(config, train_set, args.minutes, out / "logs", args.seed)
    log(f"trained {training['train_seconds']:.0f} s, {training['epochs']} epochs; {uptime()}")
    evaluation = evaluate_masks(config, Path(training["weights"]), val_json, val_images)
    summary = {"config": str(args.config), "settings": json.loads(config.to_json()), "train_images": args.train_images,
               "val_images": args.val_images, "image_sides": sides, "minutes_budget": args.minutes,
               **training, **evaluation, "uptime_end": uptime()}
    (out / "learning.json").write_text(json.dumps(summary, indent=1))
    landmarks = evaluation["keypoints"]
    landmark_text = f", landmark AP {landmarks['AP']:.3f} AP50 {landmarks['AP50']:.3f}" if landmarks else ""
    log(f"mask AP50 {evaluation['segm']['AP50']:.3f}, mask AP {evaluation['segm']['AP']:.3f}, "
        f"box AP50 {evaluation['bbox']['AP50']:.3f}{landmark_text} (target mask AP50 >= 0.5); {uptime()}")
    return summary


# ------------------------------------------------------------------ step timing
def config_with_overrides(args):
    from mrcnn.config import load_config, with_overrides

    config = load_config(args.config)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    return with_overrides(config, source="--set", **overrides) if overrides else config


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def time_our_step(config, batch, steps: int) -> dict:
    """Median seconds of ``TrainingModel.train_step`` (all layers trainable) on one fixed batch."""
    import tensorflow as tf

    from mrcnn.model import MaskRCNN
    from mrcnn.train.step import TrainingModel, make_optimizer
    from mrcnn.train.layer_groups import set_trainable

    model = MaskRCNN(mode="training", config=config, model_dir="/tmp/fseg_bench_step")
    set_trainable(model.keras_model, ".*")
    trainer = TrainingModel(model.keras_model, config)
    trainer.compile(optimizer=make_optimizer(config, config.LEARNING_RATE), jit_compile=False)
    trainer.optimizer.build(trainer.graph.trainable_variables)
    step = tf.function(trainer.train_step)
    start = time.perf_counter()
    step(batch)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logs = step(batch)
        float(logs["loss"])  # wait for the result
        times.append(time.perf_counter() - start)
    return {"first_step_s": first, "step_s": median(times), "images_per_s": config.BATCH_SIZE / median(times),
            "parameters": model.keras_model.count_params()}


def torch_inputs(dataset, config, path: Path) -> None:
    """Writes BATCH_SIZE images at the config's square size with their boxes, labels and masks (npz)."""
    import numpy as np
    import tensorflow as tf

    side = int(config.IMAGE_SHAPE[0])
    arrays = {}
    for i, image_id in enumerate(dataset.image_ids[:config.BATCH_SIZE]):
        image = tf.image.resize(dataset.load_image(image_id), (side, side)).numpy().astype(np.uint8)
        masks, class_ids = dataset.load_mask_resized(image_id, side, side)
        masks, class_ids = masks[..., class_ids > 0], class_ids[class_ids > 0]
        boxes = []
        for n in range(masks.shape[2]):
            rows, cols = np.where(masks[:, :, n].any(axis=1))[0], np.where(masks[:, :, n].any(axis=0))[0]
            boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])  # x1, y1, x2, y2 pixels
        arrays[f"image{i}"] = image
        arrays[f"boxes{i}"] = np.array(boxes, np.float32)
        arrays[f"labels{i}"] = class_ids.astype(np.int64)
        arrays[f"masks{i}"] = np.transpose(masks, (2, 0, 1)).astype(np.uint8)
    np.savez(path, count=config.BATCH_SIZE, num_classes=config.NUM_CLASSES,
             rois_per_image=config.TRAIN_ROIS_PER_IMAGE, positive_fraction=config.ROI_POSITIVE_RATIO,
             pre_nms=config.PRE_NMS_LIMIT, post_nms=config.POST_NMS_ROIS_TRAINING,
             rpn_anchors=config.RPN_TRAIN_ANCHORS_PER_IMAGE, side=side, **arrays)


def time_torch_step(npz_path: str, steps: int, threads: int) -> dict:
    """torchvision's maskrcnn_resnet50_fpn training step on the saved batch (run with torch's Python)."""
    import numpy as np
    import torch
    import torchvision

    torch.set_num_threads(threads)
    data = np.load(npz_path)
    count, side = int(data["count"]), int(data["side"])
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=int(data["num_classes"]),
        min_size=side, max_size=side,
        rpn_pre_nms_top_n_train=int(data["pre_nms"]), rpn_post_nms_top_n_train=int(data["post_nms"]),
        rpn_batch_size_per_image=int(data["rpn_anchors"]),
        box_batch_size_per_image=int(data["rois_per_image"]), box_positive_fraction=float(data["positive_fraction"]))
    model.train()
    images = [torch.from_numpy(data[f"image{i}"]).permute(2, 0, 1).float() / 255.0 for i in range(count)]
    targets = [{"boxes": torch.from_numpy(data[f"boxes{i}"]), "labels": torch.from_numpy(data[f"labels{i}"]),
                "masks": torch.from_numpy(data[f"masks{i}"])} for i in range(count)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=1e-4)

    def step():
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"first_step_s": first, "step_s": median(times), "images_per_s": count / median(times),
            "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "threads": threads}


def run_step(args) -> dict:
    import tensorflow as tf

    from mrcnn.data.pipeline import build_training_dataset

    config = config_with_overrides(args)
    annotations, images = ensure_split(args.cache, args.val_images, args.val_seed, args.min_side, args.max_side)
    dataset = load_dataset(annotations, images, config)
    batch = next(iter(build_training_dataset(dataset, config, seed=0, instance_fields=head_fields(config))))
    threads = os.cpu_count()
    result = {"config": str(args.config), "overrides": args.set, "backbone": config.BACKBONE,
              "image_side": int(config.IMAGE_SHAPE[0]), "batch": config.BATCH_SIZE,
              "rois_per_image": config.TRAIN_ROIS_PER_IMAGE, "threads": threads,
              "tf_threads": [tf.config.threading.get_inter_op_parallelism_threads(),
                             tf.config.threading.get_intra_op_parallelism_threads()],
              "uptime_before": uptime()}
    result["ours"] = time_our_step(config, batch, args.steps)
    log(f"ours: {result['ours']['step_s']:.3f} s/step, {result['ours']['images_per_s']:.2f} images/s; {uptime()}")
    if args.torch:
        npz = Path(args.out) / "torch_batch.npz"
        npz.parent.mkdir(parents=True, exist_ok=True)
        torch_inputs(dataset, config, npz)
        command = [args.torch_python, str(Path(__file__).resolve()), "--torch-worker", str(npz),
                   "--steps", str(args.steps), "--threads", str(threads)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result["torchvision"] = json.loads(output.strip().splitlines()[-1])
        ratio = result["ours"]["step_s"] / result["torchvision"]["step_s"]
        result["ours_over_torchvision"] = ratio
        log(f"torchvision: {result['torchvision']['step_s']:.3f} s/step; ours / torchvision = {ratio:.2f} "
            f"(target <= 1.2); {uptime()}")
    result["uptime_after"] = uptime()
    print(json.dumps(result, indent=1))
    return result


# ------------------------------------------------------------------ pipeline
def run_pipeline(args) -> dict:
    """Images/s of the augmented training pipeline alone, after a few warm-up batches."""
    from mrcnn.data.pipeline import build_training_dataset

    config = config_with_overrides(args)
    sides = (args.min_side, args.max_side)
    annotations, images = ensure_split(args.cache, args.train_images, args.train_seed, *sides)
    dataset = load_dataset(annotations, images, config)
    iterator = iter(build_training_dataset(dataset, config, seed=0, instance_fields=head_fields(config)))
    for _ in range(3):
        next(iterator)
    before = uptime()
    start = time.perf_counter()
    for _ in range(args.steps):
        next(iterator)
    seconds = time.perf_counter() - start
    result = {"config": str(args.config), "overrides": args.set, "batches": args.steps, "batch": config.BATCH_SIZE,
              "images_per_s": args.steps * config.BATCH_SIZE / seconds, "uptime_before": before,
              "uptime_after": uptime()}
    log(f"pipeline: {result['images_per_s']:.1f} images/s")
    print(json.dumps(result, indent=1))
    return result


# ------------------------------------------------------------------ main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--learning", action="store_true", help="train from scratch, then mask AP50 on held-out images")
    mode.add_argument("--step", action="store_true", help="seconds per training step (with --torch: vs torchvision)")
    mode.add_argument("--pipeline", action="store_true", help="images/s of the input pipeline alone")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where generated splits are kept")
    parser.add_argument("--out", default="/tmp/fseg_bench_train", help="logs, weights and learning.json")
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall-time budget (--learning)")
    parser.add_argument("--train-images", type=int, default=1500)
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--val-seed", type=int, default=2)
    parser.add_argument("--min-side", type=int, default=160, help="generated image sides, pixels")
    parser.add_argument("--max-side", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0, help="data order and augmentation")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (--step) or batches (--pipeline)")
    parser.add_argument("--torch", action="store_true", help="--step: also time torchvision's Mask R-CNN")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help='config overrides, e.g. --set BACKBONE=\'"resnet50"\' TRAIN_ROIS_PER_IMAGE=128')
    parser.add_argument("--torch-python", default=sys.executable,
                        help="Python with torch and torchvision installed (--step --torch)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help=argparse.SUPPRESS)
    mode.add_argument("--torch-worker", metavar="NPZ", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.torch_worker:  # runs under --torch-python; prints one JSON line
        print(json.dumps(time_torch_step(args.torch_worker, args.steps, args.threads)))
    elif args.learning:
        run_learning(args)
    elif args.step:
        run_step(args)
    else:
        run_pipeline(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
