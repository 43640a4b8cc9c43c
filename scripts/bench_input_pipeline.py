#!/usr/bin/env python3
"""Images per second of the training input pipeline alone (no model), on a generated split.

Steps:
  1. generate (once, cached outside the repo) a synthetic DeepFashion2 split with
     df2coco.synthetic and convert it to COCO with df2coco.convert;
  2. load it as a CocoDataset;
  3. for each image size: pull batches from ``mrcnn.data.build_training_dataset``
     (augmentation on, shuffled, repeated) and from ``build_validation_dataset``, and,
     for comparison, from a matterport-style Python generator wrapped in
     ``tf.data.Dataset.from_generator`` (PIL decode, ``load_mask`` at full size,
     skimage/scipy resize_image + resize_mask + minimize_mask from mrcnn.ops.resize,
     the same RPN targets). The first batches are warm-up and not timed;
  4. with --train-step, also time one training step of a small model (resnet50, the same
     pipeline feeding ``mrcnn.train.step.TrainingModel.fit``) at each size, for issue 4's target:
     the pipeline must deliver images at least 3x faster than the step consumes them.

Usage:
  python3 scripts/bench_input_pipeline.py [--images 200] [--batches 40] [--sizes 256,1024]
      [--cache ~/.cache/fseg/bench] [--skip-generator] [--train-step]
Prints a Markdown table and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WARMUP_BATCHES = 3


def ensure_split(cache: Path, num_images: int, seed: int) -> tuple[Path, Path]:
    """(annotations json, image folder) of the cached generated split."""
    from df2coco.convert import convert_split
    from df2coco.synthetic import generate_split

    split = cache / f"pipeline_{num_images}_s{seed}"
    annotations = split / "coco.json"
    if not annotations.is_file():
        generate_split(split, num_images, seed=seed)
        convert_split(split, annotations, force=True)
    return annotations, split / "image"


def make_config(side: int, batch: int):
    from mrcnn.config import Config

    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 14
        IMAGES_PER_GPU = batch
        IMAGE_MIN_DIM = side * 800 // 1024
        IMAGE_MAX_DIM = side
        MAX_GT_INSTANCES = 10 if side <= 256 else 100
        RPN_ANCHOR_SCALES = tuple(s * side // 1024 for s in (32, 64, 128, 256, 512))

    return BenchConfig()


def time_batches(dataset, batches: int, batch_size: int) -> float:
    """Images per second over ``batches`` batches after the warm-up ones."""
    iterator = iter(dataset)
    for _ in range(WARMUP_BATCHES):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def time_train_step(dataset, config, steps: int = 5) -> float:
    """Images per second of TrainingModel.fit (resnet50, BatchNorm trained, 64 ROIs) fed by the pipeline."""
    import time as clock

    from mrcnn.data.pipeline import build_training_dataset
    from mrcnn.train.step import TrainingModel, make_optimizer
    from mrcnn.modeling.training import build_training_model

    config.BACKBONE, config.TRAIN_BN = "resnet50", True
    config.TRAIN_ROIS_PER_IMAGE, config.POST_NMS_ROIS_TRAINING = 64, 500
    from mrcnn.modeling.roi_heads import build_roi_heads

    model = TrainingModel(build_training_model(config, build_roi_heads(config)), config)
    model.compile(optimizer=make_optimizer(config, 0.001))
    train = build_training_dataset(dataset, config, seed=0)
    model.fit(train, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: tracing
    start = clock.perf_counter()
    model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * config.BATCH_SIZE / (clock.perf_counter() - start)


def matterport_style_generator(dataset, config):
    """A tf.data source built like matterport's data_generator: one Python thread does everything."""
    import numpy as np
    import tensorflow as tf

    from mrcnn.ops.anchors import compute_backbone_shapes, generate_pyramid_anchors
    from mrcnn.ops.masks import minimize_mask
    from mrcnn.ops.resize import resize_image, resize_mask
    from mrcnn.ops.rpn_targets import build_rpn_targets

    shapes = compute_backbone_shapes(config.IMAGE_SHAPE, config.BACKBONE_STRIDES)
    anchors = generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
                                       config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    rpn = tf.function(lambda c, b: build_rpn_targets(anchors, c, b, anchors_per_image=256))
    gt = config.MAX_GT_INSTANCES

    def generate():
        rng = np.random.default_rng(0)
        while True:
            image_id = int(rng.integers(dataset.num_images))
            image = dataset.load_image(image_id)
            masks, class_ids = dataset.load_mask(image_id)
            image, window, scale, padding, crop = resize_image(
                image, config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE, config.IMAGE_RESIZE_MODE)
            masks = resize_mask(masks, scale, padding, crop)
            if rng.random() < 0.5:
                image, masks = image[:, ::-1], masks[:, ::-1]
            keep = masks.any(axis=(0, 1))
            masks, class_ids = masks[:, :, keep][:, :, :gt], class_ids[keep][:gt]
            boxes = _boxes(masks)
            mini = minimize_mask(boxes, masks, config.MINI_MASK_SHAPE)
            match, deltas = rpn(class_ids, boxes.astype(np.float32))
            molded = image.astype(np.float32) - config.MEAN_PIXEL.astype(np.float32)
            yield (molded, match.numpy()[:, None], deltas.numpy(), _pad(class_ids, gt),
                   _pad(boxes.astype(np.float32), gt), np.pad(mini, [(0, 0), (0, 0), (0, gt - mini.shape[2])]))

    side = int(config.IMAGE_SHAPE[0])
    spec = (tf.TensorSpec([side, side, 3], tf.float32), tf.TensorSpec([None, 1], tf.int32),
            tf.TensorSpec([256, 4], tf.float32), tf.TensorSpec([gt], tf.int32), tf.TensorSpec([gt, 4], tf.float32),
            tf.TensorSpec([*config.MINI_MASK_SHAPE, gt], tf.bool))
    return tf.data.Dataset.from_generator(generate, output_signature=spec).batch(config.BATCH_SIZE).prefetch(2)


def _boxes(masks):
    import numpy as np

    boxes = np.zeros((masks.shape[-1], 4), dtype=np.int32)
    for i in range(masks.shape[-1]):
        rows, cols = np.where(masks[:, :, i].any(axis=1))[0], np.where(masks[:, :, i].any(axis=0))[0]
        boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def _pad(values, size):
    import numpy as np

    return np.pad(values, [(0, size - len(values))] + [(0, 0)] * (values.ndim - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per measurement")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--sizes", default="256,1024", help="IMAGE_MAX_DIM values, comma-separated")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "fseg" / "bench")
    parser.add_argument("--skip-generator", action="store_true", help="do not time the Python generator")
    parser.add_argument("--train-step", action="store_true", help="also time a training step (slow)")
    args = parser.parse_args()

    import tensorflow as tf

    from mrcnn.data.coco import CocoDataset
    from mrcnn.data.pipeline import build_training_dataset, build_validation_dataset

    annotations, images = ensure_split(args.cache, args.images, seed=0)
    dataset = CocoDataset()
    dataset.load_coco(annotations, images)
    dataset.prepare()
    rows = []
    for side in (int(s) for s in args.sizes.split(",")):
        config = make_config(side, args.batch_size)
        batches = max(5, args.batches * 256 // side)
        train = build_training_dataset(dataset, config, seed=0)
        rows.append({"size": side, "source": "build_training_dataset (augment)",
                     "images_per_s": time_batches(train, batches, config.BATCH_SIZE)})
        val = build_validation_dataset(dataset, config).repeat()
        rows.append({"size": side, "source": "build_validation_dataset",
                     "images_per_s": time_batches(val, batches, config.BATCH_SIZE)})
        if not args.skip_generator:
            generator = matterport_style_generator(dataset, config)
            rows.append({"size": side, "source": "Python generator (matterport style)",
                         "images_per_s": time_batches(generator, batches, config.BATCH_SIZE)})
        if args.train_step:
            rows.append({"size": side, "source": "training step, resnet50 (TrainingModel.fit)",
                         "images_per_s": time_train_step(dataset, make_config(side, args.batch_size))})
    print(f"\n{args.images} generated images, batch {args.batch_size}, {os.cpu_count()} cores, TF {tf.__version__}\n")
    print("| IMAGE_MAX_DIM | source | images/s |\n|---|---|---|")
    for row in rows:
        print(f"| {row['size']} | {row['source']} | {row['images_per_s']:.3g} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
