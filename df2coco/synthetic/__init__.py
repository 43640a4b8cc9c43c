"""Synthetic DeepFashion2 data: garment-shaped items on varied backgrounds, in the exact file format.

Used by tests, benchmarks and the demo (which trains a small Mask R-CNN on it).

    generate_split(out_dir, num_images, seed=0, *, quirk_rate=0.0, ...) -> SynthSummary
        writes out_dir/image/%06d.jpg and out_dir/annos/%06d.json (1..N);
    make_image_record(rng_or_seed, index, ...) -> (image uint8 [H, W, 3] RGB, annotation dict)
        one clean image in memory.

Modules, in dependency order: ``shapes`` (silhouettes in garment units),
``render`` (pixels), ``scene`` (placement and occlusion), ``annotation``
(DeepFashion2 dicts, pair plan), ``quirks`` (deliberate defects), ``files``
(one image's files), ``workers`` (worker processes), ``split`` (the API and
its summary). No TensorFlow here: numpy + OpenCV only.
"""
from df2coco.synthetic.annotation import make_image_record
from df2coco.synthetic.split import SynthSummary, generate_split

__all__ = ["SynthSummary", "generate_split", "make_image_record"]
