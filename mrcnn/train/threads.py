"""How many CPU threads one TensorFlow op may use while training (TRAIN_THREADS_PER_OP).

TensorFlow runs independent ops side by side on its inter-op threads (one per core by default)
and splits each op over its intra-op threads (also one per core). A small model's step is
hundreds of small ops: splitting each one costs more than it gains, and one thread per op lets
the cores run different ops at once instead (``configs/synthetic.toml``: a step 1.2x faster on
2 cores, docs/BENCHMARKS.md). A large model's convolutions are worth splitting: leave the setting
at 0, TensorFlow's default.

TensorFlow fixes its thread pools when it starts, so this must run before the first model,
tensor or device query of the process.
"""
from __future__ import annotations

import tensorflow as tf


def set_threads_per_op(threads: int) -> bool:
    """Limits each op to ``threads`` intra-op threads (0: leave TensorFlow's choice).

    Returns:
      True when the setting is in force (or ``threads`` is 0); False when TensorFlow already runs
      in this process with another setting, which it cannot change any more.
    """
    if threads <= 0 or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # "cannot be modified after initialization"
        return False
    return True
