"""An IFAN network on images of any size with bounded memory: whole when small, in tiles otherwise.

The graph-side policy of the exported SavedModel (and of any caller that wants one): a batch
whose padded pixels (all images together) fit one tile's budget of ``tile * tile`` pixels runs
through the network in one call, exactly like ``padding.deblur_any_size``; otherwise the images run
one at a time, each through ``tiling.tiled_deblur`` (a single tile, hence the untiled result, when
the image's padded area fits the budget; balanced tiles otherwise). Activation memory is therefore
bounded by one tile of at most ``tile * tile`` pixels, whatever the batch and image sizes.
"""

import tensorflow as tf

from ifan_tf.inference.padding import deblur_any_size
from ifan_tf.inference.tiling import check_tile_arguments, padded_tile_size, tiled_deblur


def network_tile_runner(network):
    """``run_tile`` for ``tiled_deblur``: ``[1, h, w, 3]`` (h, w multiples of 8) -> float32 in [0, 1]."""
    return lambda tile: tf.cast(network(tile, training=False), tf.float32)


def deblur_batch_bounded(network, images, tile, overlap):
    """Deblurs ``images`` ``[B, H, W, 3]`` float32 in [0, 1] (B, H, W >= 1) with memory bounded by ``tile``.

    Returns ``[B, H, W, 3]`` float32 in [0, 1]. ``tile``/``overlap`` are Python ints (see ``tiling``).
    """
    check_tile_arguments(tile, overlap)
    images = tf.convert_to_tensor(images, tf.float32)
    shape = tf.shape(images)
    padded_h, padded_w = padded_tile_size(shape[1], tile), padded_tile_size(shape[2], tile)
    fits = tf.cast(shape[0], tf.int64) * tf.cast(padded_h, tf.int64) * tf.cast(padded_w, tf.int64) <= tile * tile
    run_tile = network_tile_runner(network)

    def one_by_one():
        return tf.map_fn(lambda image: tiled_deblur(run_tile, image, tile, overlap), images,
                         fn_output_signature=tf.TensorSpec([None, None, 3], tf.float32), parallel_iterations=1)

    deblurred = tf.cond(fits, lambda: deblur_any_size(network, images), one_by_one)
    return tf.clip_by_value(deblurred, 0.0, 1.0)
