"""Dual-pixel defocus kernels (Punnappurath et al., ICCP 2020; Abuolaim et al., ICCV 2021).

For a signed circle of confusion (CoC) of diameter `c` pixels:
* the combined kernel K_C is a disc of diameter |c| (anti-aliased by supersampling);
* the left and right kernels split the disc with a horizontal linear ramp across it,
  K_L ~ disc * (1 - x/r)/2 and K_R ~ disc * (1 + x/r)/2 for c > 0 (r = |c|/2, x to the right);
  the sign of the CoC swaps them (c < 0: K_L ~ disc * (1 + x/r)/2 ...). Each kernel sums to 1,
  so K_C = (K_L + K_R) / 2 and the combined image is the mean of the two views;
* the ramp puts the centroid of K_L at -r/4 and of K_R at +r/4 (continuous limit), so the
  views are shifted against each other by a disparity proportional to the blur size:
  `d = centroid(K_R) - centroid(K_L)` ~ c/4, signed like c.

Convention (see `ifan_tf.data.schema`): sampling the right view at x + d gives the left view.
With convolution `V = S * K_V`, a kernel with centroid t shows S shifted by t, so
`R(x + d) = L(x)` holds with `d = centroid(K_R) - centroid(K_L)`.

Kernels are arrays `[2k+1, 2k+1] float32` indexed [y, x] with the centre at [k, k], for use in a
true convolution (flip them for a correlation such as `cv2.filter2D`).

Blur levels: spatially varying blur is rendered by interpolating between kernels at a fixed
ladder of signed CoC values (`coc_levels`): 1-pixel steps up to 8 px, then steps of 15 %.
Levels wider than `MAX_DIRECT_DIAMETER` are rendered at a reduced resolution (`render_scale`:
1/2, 1/4, ...) with the correspondingly smaller kernel, which is fast and, for blur that wide,
visually identical; `level_disparities` accounts for it.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

SUPERSAMPLING = 8
LINEAR_LADDER_END = 8.0
GEOMETRIC_STEP = 1.15
# Largest CoC rendered at full resolution (its kernel is 11x11; OpenCV filters that directly).
MAX_DIRECT_DIAMETER = 9.0


@dataclasses.dataclass(frozen=True)
class DualPixelKernels:
    """Kernels of one signed CoC: `left`, `right`, `combined` (each sums to 1) and their disparity."""

    coc: float
    left: np.ndarray
    right: np.ndarray
    combined: np.ndarray
    disparity: float  # centroid_x(right) - centroid_x(left), pixels


def _coverage_and_ramp(diameter: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel disc coverage and coverage-weighted ramp (1 - x/r)/2, by supersampling."""
    radius = diameter / 2.0
    half = int(np.ceil(radius + 0.5))
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5
    axis = (np.arange(-half, half + 1)[:, None] + offsets[None, :]).reshape(-1)  # sample coordinates
    y, x = np.meshgrid(axis, axis, indexing="ij")
    inside = (x * x + y * y) <= radius * radius
    if radius > 0:
        ramp = np.clip((1.0 - x / radius) / 2.0, 0.0, 1.0)
    else:
        ramp = np.full_like(x, 0.5)
    size = 2 * half + 1
    shape = (size, SUPERSAMPLING, size, SUPERSAMPLING)
    coverage = inside.reshape(shape).sum(axis=(1, 3)).astype(np.float64)
    left_weight = (inside * ramp).reshape(shape).sum(axis=(1, 3))
    if coverage.sum() == 0 or diameter <= 1.0:  # a CoC of at most a pixel is a point
        coverage = np.zeros((size, size))
        coverage[half, half] = 1.0
        left_weight = coverage / 2.0
    return coverage, left_weight


def _centroid_x(kernel: np.ndarray) -> float:
    half = kernel.shape[1] // 2
    return float((kernel.sum(axis=0) * np.arange(-half, half + 1)).sum() / kernel.sum())


@functools.lru_cache(maxsize=512)
def dual_pixel_kernels(coc: float) -> DualPixelKernels:
    """The left, right and combined kernels of a signed CoC diameter `coc` (pixels)."""
    coverage, left_weight = _coverage_and_ramp(abs(float(coc)))
    right_weight = coverage - left_weight
    if coc < 0:
        left_weight, right_weight = right_weight, left_weight
    left = (left_weight / left_weight.sum()).astype(np.float32)
    right = (right_weight / right_weight.sum()).astype(np.float32)
    combined = (coverage / coverage.sum()).astype(np.float32)
    return DualPixelKernels(float(coc), left, right, combined, _centroid_x(right) - _centroid_x(left))


def coc_level_magnitudes(max_magnitude: float) -> np.ndarray:
    """Unsigned CoC ladder: 0, 1, ..., 8, then x1.15 steps, up to the first value >= max_magnitude."""
    levels = [0.0]
    while levels[-1] < max_magnitude:
        last = levels[-1]
        levels.append(last + 1.0 if last < LINEAR_LADDER_END else round(last * GEOMETRIC_STEP, 4))
    return np.array(levels, dtype=np.float64)


def coc_levels(min_coc: float, max_coc: float) -> np.ndarray:
    """Signed, increasing CoC levels covering [min_coc, max_coc] (always including 0)."""
    magnitudes = coc_level_magnitudes(max(abs(min_coc), abs(max_coc)))
    signed = np.concatenate([-magnitudes[:0:-1], magnitudes])
    low = np.searchsorted(signed, min_coc, side="right") - 1
    high = np.searchsorted(signed, max_coc, side="left")
    return signed[max(low, 0): min(high, len(signed) - 1) + 1]


def interpolation_weights(coc: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear ("hat") interpolation of per-pixel CoC values between neighbouring levels.

    Returns `(lower_index, upper_weight, ...)`: `lower_index [...] int` of the level at or below
    each value, the weight of the level above (`t in [0, 1]`), and the weight of the lower level
    (`1 - t`). Values outside the levels are clamped to the end levels.
    """
    coc = np.clip(coc, levels[0], levels[-1])
    lower = np.clip(np.searchsorted(levels, coc, side="right") - 1, 0, max(len(levels) - 2, 0))
    if len(levels) == 1:
        zeros = np.zeros(coc.shape)
        return lower, zeros, 1.0 - zeros
    span = levels[lower + 1] - levels[lower]
    upper_weight = (coc - levels[lower]) / span
    return lower, upper_weight, 1.0 - upper_weight


def render_scale(coc: float) -> int:
    """Downsampling factor (1, 2, 4, ...) at which a level is rendered: |coc| / factor <= 9 px."""
    factor = 1
    while abs(coc) / factor > MAX_DIRECT_DIAMETER:
        factor *= 2
    return factor


def render_kernels(coc: float) -> tuple[DualPixelKernels, int]:
    """The kernels that render a level and the factor of the resolution they apply at."""
    factor = render_scale(coc)
    return dual_pixel_kernels(float(coc) / factor), factor


def level_disparities(levels: np.ndarray) -> np.ndarray:
    """Full-resolution disparity (pixels) that each level's rendering produces."""
    disparities = []
    for level in levels:
        kernels, factor = render_kernels(float(level))
        disparities.append(factor * kernels.disparity)
    return np.array(disparities)
