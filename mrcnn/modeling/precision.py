"""Inference precision: float32, or the trunk in bfloat16 / float16 with float32 outputs.

    model = MaskRCNN("inference", config, precision="bf16")   # fseg predict --precision bf16

    precision  Keras policy      where it helps                     refused (PrecisionError) when
    float32    float32           everywhere (the default)           never
    bf16       mixed_bfloat16    CPUs with AVX512_BF16 or AMX       the CPU has no bfloat16 instructions
                                 (x86), BF16 (Arm); NVIDIA GPUs     and no such GPU is visible (it would be
                                 of compute capability >= 8.0       emulated: slower than float32)
    fp16       mixed_float16     NVIDIA GPUs of compute             no GPU of compute capability >= 7.0 is
                                 capability >= 7.0                  visible (CPUs emulate float16)

What runs in the reduced precision: the convolutions and dense layers of the backbone, the
FPN, the RPN's shared conv and the ROI heads (weights stay float32; Keras casts them). What
stays float32 whatever the policy: every layer that handles boxes (``mrcnn.layers.BOX_DTYPE``:
proposals, ROI Align, detection) and the layers that produce the model's outputs and everything
after them (``mrcnn.layers.OUTPUT_DTYPE``: logits, softmax, deltas, mask and landmark
probabilities). So the outputs are float32 arrays, scores are not rounded to bfloat16's 8
significant bits, and the NMS rankings do not tie. The weights file is the same for every
precision.

The policy is global in Keras: :func:`building_with` sets it for one model build and restores
the previous one, so models of several precisions can live in one process.
"""
from __future__ import annotations

import contextlib
import platform
from pathlib import Path

PRECISIONS = ("float32", "bf16", "fp16")
KERAS_POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
MIN_GPU_CAPABILITY = {"bf16": (8, 0), "fp16": (7, 0)}  # NVIDIA compute capability with native support
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # /proc/cpuinfo flags (x86) / Features (Arm)


class PrecisionError(ValueError):
    """The precision is unknown, or this machine cannot compute in it natively."""


def check_precision(precision: str) -> None:
    """Raises :class:`PrecisionError` (a one-line message starting with ``precision``'s name, which the CLI
    prefixes with ``--precision``) unless ``precision`` runs natively here."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        return
    gpus = gpu_capabilities()
    needed = MIN_GPU_CAPABILITY[precision]
    if any(capability >= needed for capability in gpus):
        return
    if precision == "bf16" and cpu_bf16_flags():
        return
    where = (f"the visible GPUs have compute capability {', '.join('%d.%d' % c for c in gpus)}, "
             f"below {needed[0]}.{needed[1]}" if gpus else "no GPU is visible")
    if precision == "bf16":
        raise PrecisionError(f"bf16 needs bfloat16 instructions (AVX512_BF16 or AMX on x86, BF16 on "
                             f"Arm, or a GPU of compute capability 8.0+): {where} and this CPU has none, so it "
                             "would be emulated and slower than float32")
    raise PrecisionError(f"fp16 needs a GPU of compute capability 7.0+ ({where}; CPUs emulate "
                         "float16, slower than float32); on a CPU with AVX512_BF16 or AMX use bf16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The bfloat16 instruction flags this CPU reports (empty if none, or not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return []
    found = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            found.update(flag for flag in value.split() if flag in CPU_BF16_FLAGS)
    if "bf16" in found and platform.machine().lower() not in ("aarch64", "arm64"):
        found.discard("bf16")  # the plain name is Arm's; on x86 only avx512_bf16 / amx_bf16 count
    return sorted(found)


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capabilities of the visible GPUs (empty without GPUs)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


@contextlib.contextmanager
def building_with(precision: str):
    """Sets the Keras dtype policy of ``precision`` for the layers created inside; restores it after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(KERAS_POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
