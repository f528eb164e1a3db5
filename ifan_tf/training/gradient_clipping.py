"""Global-norm gradient clipping as in the reference (spec "Optimisation and data": norm 0.5 over
all trained weights, deblurring network + RBN).

The reference calls ``torch.nn.utils.clip_grad_norm_(params, 0.5)``:
``norm = sqrt(sum_i ||g_i||^2)``; every gradient is multiplied by
``min(1, max_norm / (norm + 1e-6))``; the returned value is the norm before clipping.
``tf.clip_by_global_norm`` has no ``1e-6`` term, hence this helper.
"""

import tensorflow as tf

#: Added to the norm in the clipping coefficient, as in ``torch.nn.utils.clip_grad_norm_``.
TORCH_CLIP_EPSILON = 1e-6


def _dense(gradient):
    return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient


def _scale(gradient, coefficient):
    coefficient = tf.cast(coefficient, gradient.dtype)
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * coefficient, gradient.indices, gradient.dense_shape)
    return gradient * coefficient


def clip_by_global_norm(gradients, max_norm=0.5, epsilon=TORCH_CLIP_EPSILON):
    """Scales ``gradients`` so that their global L2 norm is at most ~``max_norm``.

    Args:
        gradients: list of gradient tensors (any float dtype; ``tf.IndexedSlices`` allowed) or
            ``None`` (variables without gradient: kept as ``None`` and ignored in the norm).
        max_norm: the clipping threshold (reference 0.5).
        epsilon: added to the norm in the coefficient ``min(1, max_norm / (norm + epsilon))``.

    Returns:
        ``(clipped, global_norm)``: list aligned with ``gradients`` (same dtypes, ``None`` kept),
        and the float32 scalar norm before clipping. Non-finite norms propagate (all clipped
        gradients become NaN), as in the reference; check ``global_norm`` to skip such a step.

    In a ``tf.distribute`` replica context with more than one replica, the norm is that of the
    *sum* of the replicas' gradients (one extra all-reduce), and each replica's gradients are
    scaled by the same coefficient. The sum that ``optimizer.apply_gradients`` forms afterwards is
    then the clipped summed gradient, as the reference clips its whole-batch gradient.
    """
    present = [_dense(g) for g in gradients if g is not None]
    if not present:
        return list(gradients), tf.constant(0.0, tf.float32)
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        present = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, present)
    squared = [tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in present]
    global_norm = tf.sqrt(tf.add_n(squared))
    coefficient = tf.minimum(max_norm / (global_norm + epsilon), 1.0)
    clipped = [None if g is None else _scale(g, coefficient) for g in gradients]
    return clipped, global_norm
