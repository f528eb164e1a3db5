"""Any image size for a network that needs multiples of 8: reflect-pad, run, crop back.

IFAN's three stride-2 levels need H and W to be multiples of 8. Instead of cropping the image
(as the reference code does), the bottom rows and right columns are padded by mirror reflection
(``a b c d | c b a ...``, the edge pixel not repeated), the network runs on the padded image and
the output is cropped back to the input size, so every input pixel gets a deblurred value.

Reflection is written as an index map, so it also works for images smaller than the padding
(1x1, 3x5): the mirror bounces back and forth, and a single row or column is repeated.
The same index map is used by the untiled path (``reflect_pad``) and by the tiling executor
(``ifan_tf.inference.tiling``), which gathers each tile through it, so both see identical pixels.
"""

import tensorflow as tf

SIZE_MULTIPLE = 8


def padded_size(size, multiple=SIZE_MULTIPLE):
    """Smallest multiple of ``multiple`` that is >= ``size`` (``size`` >= 1)."""
    return -(-int(size) // multiple) * multiple


def reflect_indices_tf(size, new_size):
    """int32 ``[new_size]``: source index of each position of a mirror-padded axis (scalar int tensors).

    Positions ``< size`` map to themselves; later ones reflect about the last element (period
    ``2 * (size - 1)``); a size-1 axis maps everything to 0.
    """
    positions = tf.range(new_size)
    period = tf.maximum(2 * (size - 1), 1)
    folded = positions % period
    return tf.where(folded >= size, period - folded, folded)


def reflect_pad(images, multiple=SIZE_MULTIPLE):
    """Pads ``images`` ``[B, H, W, C]`` (dynamic H, W >= 1) at the bottom/right to multiples of ``multiple``.

    Returns the padded tensor ``[B, H', W', C]``; values are copies of input pixels.
    """
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    new_height = (height + multiple - 1) // multiple * multiple
    new_width = (width + multiple - 1) // multiple * multiple
    images = tf.gather(images, reflect_indices_tf(height, new_height), axis=1)
    return tf.gather(images, reflect_indices_tf(width, new_width), axis=2)


def deblur_any_size(network, images):
    """Runs the IFAN ``network`` on ``images`` ``[B, H, W, 3]`` float32 in [0, 1] of any H, W >= 1.

    Pads by reflection to multiples of 8 inside the graph, runs ``network(x, training=False)``
    and crops back. Returns ``[B, H, W, 3]`` float32 in [0, 1].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    tf.debugging.assert_positive(shape[1] * shape[2], message="the image is empty (height or width is 0)")
    deblurred = network(reflect_pad(images), training=False)
    return tf.cast(deblurred, tf.float32)[:, : shape[1], : shape[2], :]
