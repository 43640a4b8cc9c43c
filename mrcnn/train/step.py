"""The training step: ``TrainingModel.train_step`` computes the loss table and updates the weights.

Keras 3 does not allow ``add_loss`` on symbolic tensors, so the training graph
(``mrcnn.modeling.training``) only returns tensors and ``TrainingModel.train_step``
computes the losses of the loss table (``mrcnn.train.losses``) plus L2 weight decay from them.

Distribution. Under a ``tf.distribute`` strategy each replica gets
``BATCH_SIZE / replicas`` images; its loss is divided by the replica count and
the gradients are summed over the replicas, so the update is the one of the
mean loss. matterport clipped the *global* gradient norm (Keras 2 ``clipnorm``);
Keras 3's optimizer would clip each replica's partial gradient before summing
them, so ``train_step`` sums first, clips the full gradient itself, and hands
the optimizer a share that its own sum turns back into the clipped gradient.

Mixed precision. Under the ``mixed_float16`` policy Keras wraps the optimizer in
a ``LossScaleOptimizer``: the loss is multiplied by its dynamic scale, the clip
threshold too (the gradients are still scaled when clipped), and the optimizer
unscales them, skipping the step and halving the scale when they are not finite.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from mrcnn.modeling.roi_heads import build_roi_heads
from mrcnn.ops.losses import weight_decay_loss
from mrcnn.train.losses import loss_table


class TrainingModel(keras.Model):
    """Wraps the functional training graph with a loss-computing ``train_step``/``test_step``.

    The losses are those of the loss table (``mrcnn.train.losses``: matterport's five under its
    names, ``rpn_class_loss`` ... ``mrcnn_mask_loss``, plus one per extra ROI head), each tracked
    with ``keras.metrics.Mean``, plus ``loss`` (their weighted sum with weight decay): the progress
    bar and the logs show their running means.
    """

    def __init__(self, graph: keras.Model, config, loss_terms=None, **kwargs):
        """``loss_terms``: the loss table (``mrcnn.train.losses.loss_table``); default: that of the
        config's ROI heads."""
        # The graph's dtype policy (fixed when it was built), so that compile() wraps the
        # optimizer in a LossScaleOptimizer for a mixed_float16 graph, whatever the global policy is now.
        kwargs.setdefault("dtype", graph.dtype_policy)
        super().__init__(**kwargs)
        self.graph = graph
        if loss_terms is None:
            loss_terms = loss_table(config, build_roi_heads(config))
        self.loss_terms = list(loss_terms)
        self.weight_decay = float(config.WEIGHT_DECAY)
        self.clip_norm = float(config.GRADIENT_CLIP_NORM or 0.0)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", *(term.name for term in self.loss_terms))}
        self.built = True  # the wrapped graph is built; call() only delegates to it

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras hook run by fit() and evaluate() before their first step.

        Nothing needs tracing here: the graph is built and there are no compiled losses or
        metrics, so only the optimizer's variables are created (in the strategy's scope, if the
        model was created in one). Keras' own hook does more and less: under a strategy it
        averages the first batch over the replicas to trace shapes, which fails on the bool
        ground-truth masks (no AddN for bool); without one it leaves the optimizer to build inside
        the first trace of the step, and TensorFlow then traces the whole step a second time
        (seconds of every fit's first epoch).
        """
        strategy = getattr(self, "_distribute_strategy", None)  # set when created in a strategy's scope
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self._symbolic_build(data_batch={})

    def call(self, inputs, training=False):
        return self.graph(inputs, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_losses(self, inputs, outputs) -> dict:
        """Every loss of the table (float32 scalars), keyed by name, from the graph's inputs and outputs."""
        return {term.name: term.fn(inputs, outputs) for term in self.loss_terms}

    def total_loss(self, parts: dict):
        """Σ weight · loss over the table + L2 weight decay of the trainable weights: float32 scalar."""
        total = tf.add_n([tf.cast(parts[term.name], tf.float32) * term.weight for term in self.loss_terms])
        return total + weight_decay_loss(self.graph.trainable_weights, self.weight_decay)

    def _track(self, total, parts) -> dict:
        """Updates the running means; returns {name: running mean} for the logs."""
        self.trackers["loss"].update_state(total)
        for name, value in parts.items():
            self.trackers[name].update_state(value)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if spans_several_workers(tf.distribute.get_strategy()):
            # Keras averages the logs of several workers with reduce(MEAN, axis=0), which needs
            # an axis: give each value one (a scalar comes back out).
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self.graph(inputs, training=True)
            parts = self.compute_losses(inputs, outputs)
            total = self.total_loss(parts)
            # Each replica's share of the mean loss; the optimizer's loss scale (mixed precision) on top.
            scaled_loss = self.optimizer.scale_loss(total / replicas)
        variables = self.graph.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        if pairs:
            gradients = self._sum_and_clip([g for g, _ in pairs], replicas)
            self.optimizer.apply_gradients(zip(gradients, [v for _, v in pairs]))
        return self._track(total, parts)

    def _sum_and_clip(self, gradients: list, replicas: int) -> list:
        """The gradients of this replica -> what to hand the optimizer (which sums over replicas).

        Args:
          gradients: per-variable gradients of this replica's loss share, times the loss scale.
          replicas: replicas in sync (1 without distribution).
        Returns:
          gradients whose sum over replicas is the full-batch gradient clipped to a global
          norm of GRADIENT_CLIP_NORM (before loss scaling); still multiplied by the loss scale.
        """
        if replicas > 1:
            gradients = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        if self.clip_norm > 0:
            loss_scale = tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)
            gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm * loss_scale)
        if replicas > 1:
            gradients = [g / replicas for g in gradients]
        return gradients

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        inputs = data[0] if isinstance(data, tuple) else data
        outputs = self.graph(inputs, training=False)
        parts = self.compute_losses(inputs, outputs)
        return self._track(self.total_loss(parts), parts)


def spans_several_workers(strategy) -> bool:
    """True under a MultiWorkerMirroredStrategy whose cluster has more than one worker (chief included)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict() or {}
    return sum(len(tasks) for role, tasks in cluster.items() if role in ("chief", "worker")) > 1


class MomentumSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with momentum whose update is one fused TensorFlow kernel per variable.

    Keras' SGD updates each variable with about seven small ops (reads, two products, a
    difference, two assignments); the models here have 100-400 variables, so on a CPU those
    ops cost 5-10 % of a small model's step. ``ResourceApplyKerasMomentum`` computes the same
    rule in one kernel: ``m = momentum * m - learning_rate * g; w = w + m`` (Keras' order; the
    momentum variables are Keras' own, so checkpoints and ``build`` are unchanged).
    Nesterov momentum or no momentum falls back to Keras' update.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.nesterov or not self.momentum:
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        dtype = variable.dtype
        gradient = tf.convert_to_tensor(gradient)  # a sparse gradient (tf.IndexedSlices) becomes dense
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=_resource(variable), accum=_resource(momentum), lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype), momentum=tf.cast(self.momentum, dtype), use_nesterov=False)


def _resource(variable):
    """The TensorFlow resource handle of a Keras or TensorFlow variable (the local copy under a strategy)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` whose update is one fused TensorFlow kernel per variable.

    ``ResourceApplyAdam`` computes Keras' rule (bias-corrected step
    ``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, ``epsilon`` added to ``sqrt(v)``) in one kernel
    instead of about ten small ops; the moment variables are Keras' own. AMSGrad falls back to Keras.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_resource(variable), m=_resource(self._momentums[index]), v=_resource(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(tf.convert_to_tensor(gradient), dtype), use_nesterov=False)


def make_optimizer(config, learning_rate: float, momentum: float | None = None) -> keras.optimizers.Optimizer:
    """The config's OPTIMIZER at ``learning_rate``: "sgd" is matterport's SGD with momentum
    (:class:`MomentumSGD`, ``momentum`` or LEARNING_MOMENTUM), "adam" is Adam with Keras' defaults
    (:class:`FusedAdam`). The global-norm clipping (GRADIENT_CLIP_NORM) and the L2 weight decay
    (WEIGHT_DECAY) are ``TrainingModel.train_step``'s, whichever the optimizer (see module docstring)."""
    if config.OPTIMIZER == "adam":
        return FusedAdam(learning_rate=learning_rate)
    if config.OPTIMIZER != "sgd":
        raise ValueError(f"OPTIMIZER must be 'sgd' or 'adam', got {config.OPTIMIZER!r}")
    return MomentumSGD(learning_rate=learning_rate,
                       momentum=config.LEARNING_MOMENTUM if momentum is None else momentum)
