#!/usr/bin/env python3
"""Agreement of ``MaskRCNN(precision="bf16")`` with float32 on the parity images (issue 12).

Both models load the same weights (the matterport-layout file of the parity tests, resnet101, 14
classes) and run ``detect`` on ``shared/reference/matterport_ref/r512/image{0,1,2}.png`` with the
reference config (512x512, ``DETECTION_MIN_CONFIDENCE`` 0 unless --min-confidence). A float32
detection *agrees* when a bf16 detection has the same class, a box within 2 px and a mask IoU of at
least 0.95. Printed per image: counts, agreeing detections, the median mask IoU of class-and-box
matched pairs, and the top scores of both.

The weights are random (He-normal, deterministic per name), not trained: the agreement on a trained
model is better measured as AP (``fseg evaluate --precision float32`` vs ``--precision bf16``).

Usage:
  python scripts/check_precision_agreement.py [--min-confidence 0.0] [--weights FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench_vs_matterport import WEIGHTS  # the parity tests' weights file (scripts/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "matterport_ref" / "r512"


def mask_iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-confidence", type=float, default=0.0)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import numpy as np
    from PIL import Image

    from mrcnn.config import DERIVED, config_from_dict
    from mrcnn.model import MaskRCNN

    settings = {k: v for k, v in json.loads((REFERENCE / "config.json").read_text()).items()
                if k not in DERIVED and k != "COMPUTE_BACKBONE_SHAPE"}
    settings["DETECTION_MIN_CONFIDENCE"] = args.min_confidence
    config = config_from_dict(settings, source="reference config")
    images = [np.asarray(Image.open(REFERENCE / f"image{i}.png").convert("RGB")) for i in range(3)]
    results = {}
    for precision in ("float32", "bf16"):
        model = MaskRCNN("inference", config, "/tmp/check_precision_agreement", precision=precision)
        model.load_weights(str(args.weights), by_name=True)
        results[precision] = [model.detect([image])[0] for image in images]
    for i, (a, b) in enumerate(zip(results["float32"], results["bf16"])):
        agree, ious = 0, []
        for j in range(len(a["class_ids"])):
            candidates = [k for k in range(len(b["class_ids"])) if b["class_ids"][k] == a["class_ids"][j]
                          and np.abs(b["rois"][k] - a["rois"][j]).max() <= 2]
            if candidates:
                best = max(mask_iou(a["masks"][..., j], b["masks"][..., k]) for k in candidates)
                ious.append(best)
                agree += best >= 0.95
        print(f"image {i}: float32 {len(a['class_ids'])} detections, bf16 {len(b['class_ids'])}; agreeing (class, "
              f"box within 2 px, mask IoU >= 0.95): {agree}; median mask IoU of class+box matches "
              f"{np.median(ious) if ious else float('nan'):.3f}; top scores float32 {np.round(a['scores'][:3], 4)} "
              f"bf16 {np.round(b['scores'][:3], 4)}")


if __name__ == "__main__":
    main()
