"""Evaluation: COCO box and mask AP (pycocotools), matterport's mAP@0.5, and COCO results records.

    coco_eval      evaluate(): the 12 COCO numbers, per category, per DeepFashion2 attribute
    keypoint_eval  landmark AP (COCO keypoints, DeepFashion2's OKS sigmas)
    matterport_ap  matterport's compute_ap on masks, averaged over images
    results        detections -> COCO result records (RLE masks), segmentations -> RLE

NumPy and pycocotools only: results of any tool are scored without TensorFlow.
May import :mod:`mrcnn.io.files`; nothing else of ``mrcnn``.
"""
