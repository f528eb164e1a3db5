"""The compute precisions of ifan_tf, one vocabulary for training, inference, evaluation and export.

=========== ======================== ==============================================================
name        Keras dtype policy       use
=========== ======================== ==============================================================
float32     ``float32``              the default; reference parity
bfloat16    ``mixed_bfloat16``       bfloat16 compute, float32 weights (CPUs with AMX, TPUs, GPUs)
float16     ``mixed_float16``        float16 compute, float32 weights, loss scaling (GPUs, training)
=========== ======================== ==============================================================

Weights stay float32 in every precision (mixed precision), so checkpoints and model directories
do not depend on it. The Keras policy names (``mixed_bfloat16``, ...) are accepted as aliases
so that configs written before this vocabulary still load.
"""

KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
PRECISIONS = tuple(KERAS_POLICIES)
INFERENCE_PRECISIONS = ("float32", "bfloat16")  # float16 has no loss scaling to need and no tested use
_ALIASES = {policy: name for name, policy in KERAS_POLICIES.items()}


def canonical_precision(name, allowed=PRECISIONS, what="precision"):
    """The precision name of ``name`` (a name of this module or its Keras policy name).

    Args:
      name: e.g. ``"bfloat16"`` or ``"mixed_bfloat16"``.
      allowed: the names the caller accepts (e.g. ``INFERENCE_PRECISIONS``).
      what: the setting's name for the error message (e.g. ``"train.precision"``).
    Raises:
      ValueError: naming ``what``, the value and the accepted names.
    """
    canonical = _ALIASES.get(name, name)
    if canonical not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {name!r}")
    return canonical


def keras_policy(name, allowed=PRECISIONS, what="precision"):
    """The Keras dtype policy name of precision ``name`` (e.g. ``"bfloat16"`` -> ``"mixed_bfloat16"``)."""
    return KERAS_POLICIES[canonical_precision(name, allowed, what)]


def needs_loss_scaling(name):
    """Whether training at precision ``name`` needs a ``LossScaleOptimizer`` (float16)."""
    return canonical_precision(name) == "float16"
