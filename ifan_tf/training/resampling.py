"""Resampling used by the training losses: area and nearest downsampling, and the disparity warp."""

import tensorflow as tf


def area_downsample(images, factor=8):
    """Mean over ``factor x factor`` blocks (PyTorch ``interpolate(mode="area")`` at scale 1/factor).

    Args:
      images: ``[B, H, W, C]`` float, H and W multiples of ``factor``.
    Returns:
      ``[B, H/factor, W/factor, C]`` same dtype.
    """
    return tf.nn.avg_pool2d(images, ksize=factor, strides=factor, padding="VALID")


def nearest_downsample(images, factor=8):
    """Pixels ``(0, 0), (0, f), ...``: ``images[:, ::factor, ::factor]`` ([B, H, W, C] -> [B, ceil(H/f), ceil(W/f), C])."""
    return images[:, ::factor, ::factor, :]


def warp_horizontal(images, disparity):
    """Samples ``images`` at ``(x + d(x, y), y)`` with linear interpolation and zeros outside.

    This is the reference's ``grid_sample(align_corners=True, padding_mode="zeros")`` with a purely
    horizontal flow of ``d`` pixels: rows are integer, so bilinear reduces to linear along x, and
    each of the two neighbours outside ``[0, W-1]`` contributes zero.

    Args:
      images: ``[B, H, W, C]`` float.
      disparity: ``[B, H, W, 1]`` float, horizontal offset in pixels.
    Returns:
      ``[B, H, W, C]`` float, the warped images (differentiable in ``images`` and ``disparity``).
    """
    images = tf.convert_to_tensor(images)
    disparity = tf.cast(disparity[..., 0], images.dtype)
    width = tf.shape(images)[2]
    columns = tf.cast(tf.range(width), images.dtype)[tf.newaxis, tf.newaxis, :]
    sample_x = columns + disparity
    left_x = tf.floor(sample_x)
    right_weight = (sample_x - left_x)[..., tf.newaxis]

    def gather_columns(x_float):
        x_int = tf.cast(x_float, tf.int32)
        inside = tf.logical_and(x_int >= 0, x_int <= width - 1)
        values = tf.gather(images, tf.clip_by_value(x_int, 0, width - 1), axis=2, batch_dims=2)
        return values * tf.cast(inside, images.dtype)[..., tf.newaxis]

    return gather_columns(left_x) * (1.0 - right_weight) + gather_columns(left_x + 1.0) * right_weight
