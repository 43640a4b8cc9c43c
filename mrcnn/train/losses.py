"""The loss table: every loss the model trains with, where its inputs come from, and its weight.

``train_step`` sums ``weight * fn(inputs, outputs)`` over the table, plus L2 weight decay.
The table holds matterport's four box/RPN losses and one loss per ROI head
(``mrcnn.modeling.roi_heads``); a new head brings its loss with it, nothing here changes.
The loss functions themselves are in :mod:`mrcnn.ops.losses`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from mrcnn.ops import losses

# fn(training inputs, training model outputs) -> float32 scalar
LossFn = Callable[[Mapping, Mapping], object]


@dataclass(frozen=True)
class LossTerm:
    """One row of the loss table: its name (logs, CSV, LOSS_WEIGHTS key), how to compute it, its weight."""

    name: str
    fn: LossFn
    weight: float


# matterport's losses of the RPN and the box head, in its order.
CORE_LOSSES: dict[str, LossFn] = {
    "rpn_class_loss": lambda inputs, outputs: losses.rpn_class_loss(
        inputs["input_rpn_match"], outputs["rpn_class_logits"]),
    "rpn_bbox_loss": lambda inputs, outputs: losses.rpn_bbox_loss(
        inputs["input_rpn_bbox"], inputs["input_rpn_match"], outputs["rpn_bbox"]),
    "mrcnn_class_loss": lambda inputs, outputs: losses.mrcnn_class_loss(
        outputs["target_class_ids"], outputs["mrcnn_class_logits"], outputs["active_class_ids"]),
    "mrcnn_bbox_loss": lambda inputs, outputs: losses.mrcnn_bbox_loss(
        outputs["target_bbox"], outputs["target_class_ids"], outputs["mrcnn_bbox"]),
}


def _head_loss(head) -> LossFn:
    def fn(inputs, outputs):
        return head.loss(outputs[f"target_{head.name}"], outputs[head.output_name], outputs["target_class_ids"])
    return fn


def loss_table(config, heads) -> list[LossTerm]:
    """The losses of a model with ``heads``: the core four, then each head's (weights from LOSS_WEIGHTS, default 1).

    Raises:
      ValueError: LOSS_WEIGHTS names a loss the model does not have (one line, lists the losses).
    """
    fns = dict(CORE_LOSSES)
    for head in heads:
        if head.loss_name in fns:
            raise ValueError(f"ROI head {head.name!r}: loss name {head.loss_name!r} is already taken")
        fns[head.loss_name] = _head_loss(head)
    weights = dict(config.LOSS_WEIGHTS)
    unknown = sorted(set(weights) - set(fns))
    if unknown:
        raise ValueError(f"LOSS_WEIGHTS has {', '.join(unknown)}, which this model does not compute "
                         f"(its losses: {', '.join(fns)})")
    return [LossTerm(name, fn, float(weights.get(name, 1.0))) for name, fn in fns.items()]


def loss_names(config, heads) -> list[str]:
    """Names of the model's losses, in table order."""
    return [term.name for term in loss_table(config, heads)]
