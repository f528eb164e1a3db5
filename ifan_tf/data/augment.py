"""The spec's training augmentation, applied identically to all views of an example.

Per example, in the reference order (spec, "Optimisation and data"):
1. Gaussian noise with probability 0.05, sigma ~ U(0.001, sqrt(0.005)): one noise field added to
   C, L and R (not to the target), then clipped to [0, 1];
2. grayscale with probability 0.3 on every view: Y = 0.2126 R + 0.7152 G + 0.07228 B, sRGB-encoded
   (12.92 Y if Y <= 0.0031308 else 1.055 Y^(1/2.4) - 0.055) into all three channels;
3. rescale with probability 0.5 by s ~ U(0.7, 1.0) with area interpolation;
4. a random crop of `crop_size` at the same place in every view.

For speed, the crop region is chosen first and only that region is noised, converted and
rescaled: the region has side `round(crop_size / s)` (clamped to the image) at a uniform position,
which gives the same distribution of crops as rescaling the whole image and cropping uniformly;
noise and grayscale act per pixel, so applying them to the region alone changes nothing.

All randomness is stateless and derived from a per-example seed, so a pipeline with a fixed seed
is reproducible.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import tensorflow as tf

# Views that receive the noise field (the target stays clean).
NOISY_VIEWS = ("c", "l", "r")
LUMA_WEIGHTS = (0.2126, 0.7152, 0.07228)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the spec's augmentation."""

    noise_probability: float = 0.05
    noise_sigma_range: tuple[float, float] = (0.001, math.sqrt(0.005))
    grayscale_probability: float = 0.3
    rescale_probability: float = 0.5
    rescale_range: tuple[float, float] = (0.7, 1.0)


def srgb_encode(linear: tf.Tensor) -> tf.Tensor:
    """sRGB transfer function of the spec: 12.92 Y if Y <= 0.0031308 else 1.055 Y^(1/2.4) - 0.055."""
    safe = tf.maximum(linear, 0.0031308)
    return tf.where(linear <= 0.0031308, 12.92 * linear, 1.055 * tf.pow(safe, 1.0 / 2.4) - 0.055)


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """`[..., 3] float32 in [0, 1]` -> sRGB-encoded luma Y in all three channels, clipped to [0, 1].

    The spec's weights sum to 1.00008, so pure white would give 1.00004; the clip keeps the
    documented [0, 1] range and changes nothing else.
    """
    weights = tf.constant(LUMA_WEIGHTS, dtype=image.dtype)
    luma = tf.reduce_sum(image * weights, axis=-1, keepdims=True)
    encoded = tf.clip_by_value(srgb_encode(luma), 0.0, 1.0)
    return tf.repeat(encoded, 3, axis=-1)


@dataclasses.dataclass(frozen=True)
class AugmentDecision:
    """The random choices for one example (scalar tensors)."""

    add_noise: tf.Tensor  # bool
    noise_sigma: tf.Tensor  # float32
    to_grayscale: tf.Tensor  # bool
    rescale: tf.Tensor  # bool
    scale: tf.Tensor  # float32 in rescale_range (1.0 when not rescaling)
    noise_seed: tf.Tensor  # [2] int32
    position_seed: tf.Tensor  # [2] int32


def draw_decision(seed: tf.Tensor, augment: bool, config: AugmentConfig = AugmentConfig()) -> AugmentDecision:
    """Draws all random choices of one example from a `[2]` integer seed (stateless)."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    uniforms = tf.random.stateless_uniform([5], seed=seeds[0])
    low_sigma, high_sigma = config.noise_sigma_range
    low_scale, high_scale = config.rescale_range
    rescale = tf.logical_and(augment, uniforms[3] < config.rescale_probability)
    return AugmentDecision(
        add_noise=tf.logical_and(augment, uniforms[0] < config.noise_probability),
        noise_sigma=low_sigma + (high_sigma - low_sigma) * uniforms[1],
        to_grayscale=tf.logical_and(augment, uniforms[2] < config.grayscale_probability),
        rescale=rescale,
        scale=tf.where(rescale, low_scale + (high_scale - low_scale) * uniforms[4], 1.0),
        noise_seed=tf.cast(seeds[1], tf.int32),
        position_seed=tf.cast(seeds[2], tf.int32),
    )


def crop_region(height: tf.Tensor, width: tf.Tensor, crop_size: int, decision: AugmentDecision):
    """Top-left corner and side of the source region whose rescale gives the crop.

    Returns `(top, left, region_height, region_width)` int32 scalars. The side is
    `round(crop_size / scale)`, clamped to the image's shorter side (for images smaller than
    `crop_size / scale` the effective scale is closer to 1); the region is always square.
    """
    side = tf.cast(tf.round(crop_size / decision.scale), tf.int32)
    side = tf.minimum(side, tf.minimum(height, width))  # square, so the aspect ratio is kept
    region_height = region_width = side
    corner = tf.random.stateless_uniform([2], seed=decision.position_seed, minval=0.0, maxval=1.0)
    top = tf.cast(tf.floor(corner[0] * tf.cast(height - region_height + 1, tf.float32)), tf.int32)
    left = tf.cast(tf.floor(corner[1] * tf.cast(width - region_width + 1, tf.float32)), tf.int32)
    top = tf.minimum(top, height - region_height)
    left = tf.minimum(left, width - region_width)
    return top, left, region_height, region_width


def augment_views(views: Mapping[str, tf.Tensor], seed: tf.Tensor, crop_size: int, augment: bool = True,
                  config: AugmentConfig = AugmentConfig()) -> dict[str, tf.Tensor]:
    """Augments and crops all views of one example the same way.

    Args:
      views: view name ('c', 'l', 'r', 'target') -> `[H, W, 3]` uint8, uint16 or float32 image
        (integers are scaled to [0, 1] by their maximum); every view has the same size, at least
        `crop_size` on each side.
      seed: `[2]` integer tensor; equal seeds give equal results.
      crop_size: side of the square output.
      augment: False gives plain random crops (no noise, grayscale or rescale).
    Returns:
      view name -> `[crop_size, crop_size, 3] float32 in [0, 1]`.
    """
    names = list(views)
    first = views[names[0]]
    shape = tf.shape(first)
    decision = draw_decision(seed, augment, config)
    top, left, region_height, region_width = crop_region(shape[0], shape[1], crop_size, decision)

    regions = {}
    for name in names:
        region = views[name][top:top + region_height, left:left + region_width, :]
        if region.dtype == tf.uint8:
            region = tf.cast(region, tf.float32) / 255.0
        elif region.dtype == tf.uint16:
            region = tf.cast(region, tf.float32) / 65535.0
        regions[name] = tf.cast(region, tf.float32)

    noisy = [name for name in names if name in NOISY_VIEWS]
    if augment and noisy:
        def add_noise():
            field = decision.noise_sigma * tf.random.stateless_normal(
                tf.shape(regions[noisy[0]]), seed=decision.noise_seed)
            return [tf.clip_by_value(regions[name] + field, 0.0, 1.0) for name in noisy]

        noised = tf.cond(decision.add_noise, add_noise, lambda: [regions[name] for name in noisy])
        regions.update(zip(noisy, noised))

    if augment:
        converted = tf.cond(decision.to_grayscale, lambda: [grayscale(regions[name]) for name in names],
                            lambda: [regions[name] for name in names])
        regions.update(zip(names, converted))

    def resize():
        return [tf.image.resize(regions[name], [crop_size, crop_size], method="area") for name in names]

    needs_resize = tf.logical_or(tf.not_equal(region_height, crop_size), tf.not_equal(region_width, crop_size))
    resized = tf.cond(needs_resize, resize, lambda: [regions[name] for name in names])
    return {name: tf.ensure_shape(image, [crop_size, crop_size, 3]) for name, image in zip(names, resized)}
