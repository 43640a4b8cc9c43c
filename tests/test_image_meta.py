"""image_meta: layout, NumPy and graph parsing."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from mrcnn.ops.image_meta import compose_image_meta, image_meta_size, parse_image_meta, parse_image_meta_graph


def _meta():
    return compose_image_meta(7, (300, 400, 3), (512, 512, 3), (64, 0, 448, 512), 1.28, [1, 0, 1, 1])


def test_compose_layout():
    meta = _meta()
    assert meta.dtype == np.float64
    assert meta.shape == (image_meta_size(4),) == (16,)
    np.testing.assert_allclose(meta, [7, 300, 400, 3, 512, 512, 3, 64, 0, 448, 512, 1.28, 1, 0, 1, 1])


def test_parse_single_and_batch():
    parsed = parse_image_meta(_meta())
    assert parsed["image_id"] == 7 and parsed["image_id"].dtype == np.int32
    assert parsed["original_image_shape"].tolist() == [300, 400, 3]
    assert parsed["image_shape"].tolist() == [512, 512, 3]
    assert parsed["window"].tolist() == [64, 0, 448, 512]
    assert parsed["scale"].dtype == np.float32 and abs(parsed["scale"] - 1.28) < 1e-6
    assert parsed["active_class_ids"].tolist() == [1, 0, 1, 1]
    batch = parse_image_meta(np.stack([_meta(), _meta()]))
    assert batch["window"].shape == (2, 4) and batch["image_id"].shape == (2,)


def test_parse_graph():
    parsed = parse_image_meta_graph(tf.constant(np.stack([_meta(), _meta()]), tf.float32))
    assert parsed["image_shape"].shape == (2, 3)
    np.testing.assert_allclose(parsed["window"].numpy(), [[64, 0, 448, 512]] * 2)
    np.testing.assert_allclose(parsed["scale"].numpy(), [1.28, 1.28], rtol=1e-6)
    assert parsed["active_class_ids"].shape == (2, 4)
