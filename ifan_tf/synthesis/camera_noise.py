"""What a real dual-pixel camera adds to the defocused views: sensor noise and 8-bit JPEG.

Sensor noise (`add_sensor_noise`) is added in linear light to the left and right views, which
are the two photodiodes of each dual pixel and so have independent noise; the combined view is
then the mean of the two noisy views (the pixel's sum of both photodiodes, normalised), so its
noise is the same realisation, about 1/sqrt(2) as strong. The noise is heteroscedastic
(shot noise plus a read-noise floor): at linear value x its standard deviation is
`sigma * sqrt(x + READ_FLOOR)`, where `sigma` is drawn per scene in [0.25, 1] * `noise_level`
(cameras shoot at different ISOs).

JPEG (`jpeg_round_trip`) encodes each view on its own as an 8-bit JPEG of the given quality with
OpenCV and decodes it again (blocking, ringing and 8-bit quantisation).

Only the defocused inputs are degraded, never the sharp target. All randomness comes from the
scene's generator, so a scene stays a function of the seed, its split and its index.
"""
from __future__ import annotations

import cv2
import numpy as np

from ifan_tf.synthesis.defocus_render import linear_to_srgb, srgb_to_linear

READ_FLOOR = 0.0025  # read noise variance relative to shot noise: std floor = 5 % of sigma
NOISE_RANGE = (0.25, 1.0)  # per-scene sigma as a fraction of noise_level


def add_sensor_noise(left: np.ndarray, right: np.ndarray, rng: np.random.Generator,
                     noise_level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy `(left, right, combined)` views, each `[H, W, 3] float32` sRGB in [0, 1].

    Args:
      left, right: the clean views, `[H, W, 3] float32` sRGB in [0, 1].
      rng: the scene's random generator.
      noise_level: the largest per-view noise standard deviation at linear value 1 (0 = none).
    """
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    if left.shape != right.shape:
        raise ValueError(f"left {left.shape} and right {right.shape} views differ in shape")
    sigma = float(noise_level) * rng.uniform(*NOISE_RANGE)
    noisy = []
    for view in (left, right):
        linear = srgb_to_linear(view)
        noise = rng.standard_normal(linear.shape, dtype=np.float32)
        noisy.append(np.clip(linear + sigma * np.sqrt(linear + READ_FLOOR) * noise, 0.0, 1.0))
    combined = 0.5 * (noisy[0] + noisy[1])
    return linear_to_srgb(noisy[0]), linear_to_srgb(noisy[1]), linear_to_srgb(combined)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """`image` (`[H, W, 3] float32` in [0, 1]) after an 8-bit JPEG of `quality` (1-100): same shape, float32."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {quality}")
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as JPEG")
    decoded = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return decoded.astype(np.float32) / 255.0


def degrade_views(views: dict, rng: np.random.Generator, noise_level: float = 0.0, jpeg_quality: int = 0) -> dict:
    """The camera's degradations applied to the defocused views of a scene.

    Args:
      views: `{"c", "l", "r", ...}` -> `[H, W, 3] float32` in [0, 1]; other keys (the sharp
        "target") are returned unchanged.
      rng: the scene's random generator (used only when `noise_level` > 0).
      noise_level: see `add_sensor_noise`; 0 = no noise.
      jpeg_quality: JPEG quality of each of c, l and r; 0 = no JPEG.
    Returns:
      A new dict with the same keys.
    """
    views = dict(views)
    if noise_level:
        views["l"], views["r"], views["c"] = add_sensor_noise(views["l"], views["r"], rng, noise_level)
    if jpeg_quality:
        for key in ("c", "l", "r"):
            views[key] = jpeg_round_trip(views[key], jpeg_quality)
    return views
