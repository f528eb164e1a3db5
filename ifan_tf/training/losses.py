"""IFAN's three training losses (spec "Training-only parts"), all written one way.

Every loss is a per-example mean squared error (``[B]``) reduced with
``tf.nn.compute_average_loss``: the sum over the replica's examples divided by the *global*
batch size. Under a distribution strategy the replicas' gradients are summed, so the result is
the gradient of the global-batch mean; with one replica it is the plain batch mean. Equal-sized
examples make the mean of per-example means equal to the reference's mean over all elements.
"""

import tensorflow as tf

from ifan_tf.training.resampling import area_downsample, nearest_downsample, warp_horizontal

DOWNSAMPLE_FACTOR = 8
LOSS_NAMES = ("deblur", "disparity", "reblur", "total")


def per_example_mse(prediction, target):
    """Mean squared error per example: ``[B, ...]`` x2 -> ``[B]`` float32."""
    error = tf.square(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32))
    return tf.reduce_mean(tf.reshape(error, [tf.shape(error)[0], -1]), axis=1)


def reduce_over_global_batch(per_example, global_batch_size=None):
    """Sum of ``per_example`` [B] divided by the global batch size (default: B x replicas in sync)."""
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def disparity_pair(disparity_right, right, left, factor=DOWNSAMPLE_FACTOR):
    """The two images L_disp compares: (area-downsampled R warped by d, area-downsampled L).

    Args:
      disparity_right: ``[B, H/8, W/8, 1]`` DME output on the right view, pixels at 1/8 scale.
      right, left: ``[B, H, W, 3]`` float in [0, 1], the dual-pixel views.
    Returns:
      ``(warped_right_down, left_down)``, each ``[B, H/8, W/8, 3]`` float32.
    """
    right_down = area_downsample(tf.cast(right, tf.float32), factor)
    left_down = area_downsample(tf.cast(left, tf.float32), factor)
    return warp_horizontal(right_down, tf.cast(disparity_right, tf.float32)), left_down


def reblur_input(target, factor=DOWNSAMPLE_FACTOR):
    """S, the RBN's input: the sharp image sampled at every 8th pixel (nearest), ``[B, H/8, W/8, 3]``."""
    return nearest_downsample(target, factor)


def compute_losses(config, outputs, batch, reblurred=None, global_batch_size=None):
    """The deblur, disparity and reblur losses and their sum, each a scalar float32.

    Args:
      config: the ``ModelConfig`` (``use_dme`` and ``use_rbn`` switch the auxiliary losses off).
      outputs: the dict of ``IFAN(..., training=True)``.
      batch: dict with ``"image"`` (C), ``"target"`` (GT) and, for the disparity loss, ``"right"``
        and ``"left"``; all ``[B, H, W, 3]`` float in [0, 1].
      reblurred: the RBN output SB ``[B, H/8, W/8, 3]`` (needed when ``config.use_rbn``).
      global_batch_size: the batch size summed over replicas; None = B x replicas in sync.
    Returns:
      dict with ``deblur``, ``disparity``, ``reblur`` and ``total`` (disabled losses are 0).
    """
    losses = {"deblur": reduce_over_global_batch(per_example_mse(outputs["deblurred"], batch["target"]),
                                                 global_batch_size)}
    zero = tf.zeros([], tf.float32)
    if config.use_dme:
        if "disparity_right" not in outputs:
            raise ValueError("the disparity loss needs the right view: call the model with inputs['right']")
        warped, left_down = disparity_pair(outputs["disparity_right"], batch["right"], batch["left"])
        losses["disparity"] = reduce_over_global_batch(per_example_mse(warped, left_down), global_batch_size)
    else:
        losses["disparity"] = zero
    if config.use_rbn:
        if reblurred is None:
            raise ValueError("the reblurring loss needs the RBN output (reblurred)")
        image_down = area_downsample(tf.cast(batch["image"], tf.float32), DOWNSAMPLE_FACTOR)
        losses["reblur"] = reduce_over_global_batch(per_example_mse(reblurred, image_down), global_batch_size)
    else:
        losses["reblur"] = zero
    losses["total"] = losses["deblur"] + losses["disparity"] + losses["reblur"]
    return losses
