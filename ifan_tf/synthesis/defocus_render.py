"""Rendering left, right and combined dual-pixel views of a sharp image over a layered scene.

Blur is applied in linear light (the sharp sRGB image is linearised, blurred, re-encoded).
Each depth layer (`scene_layout.DepthLayer`, near to far) is rendered on its own:
* its per-pixel signed CoC is interpolated linearly between neighbouring levels of a fixed
  ladder (`dual_pixel_kernels.coc_levels`), so a smooth CoC gives smooth blur;
* for each level, the layer's visible pixels (weighted by visibility and interpolation weight),
  together with that weight as a fourth channel, are convolved with the level's left and right
  kernels, only over the bounding box the weights need;
* this yields per view a premultiplied colour and a blurred coverage ("alpha") of the layer.
Layers are then composited front to back: the transmittance behind a layer is one minus its
blurred coverage, and the result is normalised by the accumulated coverage. So a blurred near
object spills over the background behind it, an in-focus near object stays crisp over a blurred
background, the background's blur does not smear the near object's colours, and no dark halos
appear where hidden background would be needed.

Optionally (`highlight_gain` > 1), near-saturated pixels of the sharp image are treated as clipped
HDR highlights: their linear value is multiplied by up to `highlight_gain` before the blur, and the
views are clipped after it, so a bright point light blooms into a saturated disc of the CoC's
diameter (bokeh) instead of fading into a dim one. The sharp target is not changed.

The recorded disparity is the visibility-weighted interpolation of the levels' kernel
disparities, i.e. exactly the shift that the rendered kernels produce on a locally flat surface.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from ifan_tf.synthesis import dual_pixel_kernels as kernels_lib
from ifan_tf.synthesis import scene_layout

_EPSILON = 1e-6
# sRGB value of the brightest channel from which a pixel counts as (partly) clipped.
HIGHLIGHT_THRESHOLD = 0.92


@dataclasses.dataclass
class DualPixelImages:
    """Rendered views (sRGB, `[H, W, 3] float32 in [0, 1]`) and ground-truth maps (`[H, W] float32`)."""

    left: np.ndarray
    right: np.ndarray
    combined: np.ndarray
    coc: np.ndarray  # signed CoC diameter of the visible surface, pixels
    disparity: np.ndarray  # signed disparity, pixels: L(x) = R(x + d)


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (float32)."""
    image = np.asarray(image, dtype=np.float32)
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB-encoded values (float32, clipped to [0, 1])."""
    image = np.minimum(np.maximum(np.asarray(image, dtype=np.float32), 0.0), 1.0)
    encoded = np.where(image <= 0.0031308, 12.92 * image, 1.055 * np.power(image, np.float32(1.0 / 2.4)) - 0.055)
    return np.minimum(np.maximum(encoded, 0.0), 1.0).astype(np.float32)


def boost_highlights(linear: np.ndarray, sharp: np.ndarray, gain: float,
                     threshold: float = HIGHLIGHT_THRESHOLD) -> np.ndarray:
    """Clipped highlights back to HDR: `[H, W, 3] float32` linear light, >= `linear`.

    A pixel's linear value is multiplied by `1 + (gain - 1) * w`, where `w` ramps from 0 to 1 as
    the brightest channel of `sharp` (sRGB, `[H, W, 3] in [0, 1]`) goes from `threshold` to 1.
    `gain` 1 returns `linear` unchanged.
    """
    if gain < 1.0:
        raise ValueError(f"highlight_gain must be >= 1 (1 = off), got {gain}")
    if gain == 1.0:
        return linear
    brightest = np.asarray(sharp, np.float32).max(axis=2, keepdims=True)
    weight = np.clip((brightest - threshold) / (1.0 - threshold), 0.0, 1.0)
    return (linear * (1.0 + (gain - 1.0) * weight)).astype(np.float32)


def _convolve(stack: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution with zeros outside (`cv2.filter2D` correlates, so the kernel is flipped)."""
    return cv2.filter2D(stack, -1, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=cv2.BORDER_CONSTANT)


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """`(top, bottom, left, right)` (exclusive ends) of the True pixels, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _blur_level(linear: np.ndarray, weight: np.ndarray, origin: tuple[int, int], level: float,
                left: np.ndarray, right: np.ndarray) -> None:
    """Adds one level's blurred [colour * weight, weight] to the left and right accumulators.

    `weight` holds the level's weights of `linear[origin[0]:, origin[1]:]` (zero elsewhere);
    `linear`, `left` and `right` share one frame. Only the weights' bounding box plus the
    kernel's reach is processed, at the level's render scale: the box is aligned to the factor,
    block-averaged down, filtered and bilinearly upsampled (block averaging and OpenCV's bilinear
    resize share pixel centres, so nothing shifts).
    """
    box = _bounding_box(weight > 0)
    if box is None:
        return
    kernels, factor = kernels_lib.render_kernels(level)
    height, width = linear.shape[:2]
    y0, y1, x0, x1 = box[0] + origin[0], box[1] + origin[0], box[2] + origin[1], box[3] + origin[1]
    margin = (kernels.left.shape[0] // 2 + 1) * factor
    top = max(y0 - margin, 0) // factor * factor
    left_edge = max(x0 - margin, 0) // factor * factor
    bottom = -(-min(y1 + margin, height) // factor) * factor
    right_edge = -(-min(x1 + margin, width) // factor) * factor
    valid_h, valid_w = min(bottom, height) - top, min(right_edge, width) - left_edge
    region = (slice(top, top + valid_h), slice(left_edge, left_edge + valid_w))

    values = weight[box[0]:box[1], box[2]:box[3]]
    stack = np.zeros((bottom - top, right_edge - left_edge, 4), np.float32)
    inner = (slice(y0 - top, y1 - top), slice(x0 - left_edge, x1 - left_edge))
    stack[inner + (slice(0, 3),)] = linear[y0:y1, x0:x1] * values[..., None]
    stack[inner + (3,)] = values
    if np.count_nonzero(kernels.combined) == 1:  # a point: no blur
        left[region] += stack[:valid_h, :valid_w]
        right[region] += stack[:valid_h, :valid_w]
        return
    if factor > 1:
        small_h, small_w = stack.shape[0] // factor, stack.shape[1] // factor
        stack = stack.reshape(small_h, factor, small_w, factor, 4).mean(axis=(1, 3))
    for accumulator, kernel in ((left, kernels.left), (right, kernels.right)):
        blurred = _convolve(stack, kernel)
        if factor > 1:
            blurred = cv2.resize(blurred, (right_edge - left_edge, bottom - top), interpolation=cv2.INTER_LINEAR)
        accumulator[region] += blurred[:valid_h, :valid_w]


@dataclasses.dataclass
class _LayerRender:
    """A layer's contribution inside `frame` (the region its blur can reach)."""

    frame: tuple[slice, slice]
    left: np.ndarray  # [h, w, 4] premultiplied colour + coverage
    right: np.ndarray
    disparity: np.ndarray  # [h, w]


def _render_layer(linear: np.ndarray, layer: scene_layout.DepthLayer) -> _LayerRender | None:
    """Renders one layer's left and right views (None if the layer is not visible)."""
    support_box = _bounding_box(layer.visibility > 0)
    if support_box is None:
        return None
    height, width = layer.coc.shape
    inside = (slice(support_box[0], support_box[1]), slice(support_box[2], support_box[3]))
    support_coc = layer.coc[inside][layer.visibility[inside] > 0]
    levels = kernels_lib.coc_levels(float(support_coc.min()), float(support_coc.max()))
    widest = float(np.abs(levels).max())
    reach = int(np.ceil(widest / 2)) + 2 * kernels_lib.render_scale(widest) + 2
    frame = (slice(max(support_box[0] - reach, 0), min(support_box[1] + reach, height)),
             slice(max(support_box[2] - reach, 0), min(support_box[3] + reach, width)))
    coc, visibility, frame_linear = layer.coc[frame], layer.visibility[frame], linear[frame]

    lower, upper_weight, lower_weight = kernels_lib.interpolation_weights(coc, levels)
    disparities = kernels_lib.level_disparities(levels)
    upper = np.minimum(lower + 1, len(levels) - 1)
    disparity = (lower_weight * disparities[lower] + upper_weight * disparities[upper]).astype(np.float32)
    support = visibility > 0
    # Per row and column, the range of levels in use, to find each level's band quickly.
    lowest = np.where(support, lower, len(levels))
    highest = np.where(support, lower + 1, -1)
    row_low, row_high = lowest.min(axis=1), highest.max(axis=1)
    col_low, col_high = lowest.min(axis=0), highest.max(axis=0)

    left = np.zeros(frame_linear.shape[:2] + (4,), np.float32)
    right = np.zeros_like(left)
    for index, level in enumerate(levels):
        rows = np.flatnonzero((row_low <= index) & (row_high >= index))
        cols = np.flatnonzero((col_low <= index) & (col_high >= index))
        if rows.size == 0 or cols.size == 0:
            continue
        band = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        band_lower = lower[band]
        weight = np.where(band_lower == index, lower_weight[band], 0.0)
        if index > 0:
            weight += np.where(band_lower == index - 1, upper_weight[band], 0.0)
        weight = (weight * visibility[band]).astype(np.float32)
        _blur_level(frame_linear, weight, (int(rows[0]), int(cols[0])), float(level), left, right)
    return _LayerRender(frame, left, right, disparity)


def render_dual_pixel(sharp: np.ndarray, layout: scene_layout.SceneLayout,
                      highlight_gain: float = 1.0) -> DualPixelImages:
    """Renders the defocused dual-pixel views of `sharp` (`[H, W, 3] float32 sRGB in [0, 1]`).

    `highlight_gain` > 1 blooms near-saturated pixels into bokeh discs (`boost_highlights`).
    """
    sharp = np.asarray(sharp, dtype=np.float32)
    height, width = sharp.shape[:2]
    for layer in layout.layers:
        if layer.coc.shape != (height, width) or layer.visibility.shape != (height, width):
            raise ValueError(f"layout maps {layer.coc.shape} do not match the image {sharp.shape[:2]}")
    linear = boost_highlights(srgb_to_linear(sharp), sharp, float(highlight_gain))
    views = ("left", "right", "combined")
    accumulated = {view: np.zeros((height, width, 4), np.float32) for view in views}
    transmittance = {view: np.ones((height, width, 1), np.float32) for view in views}
    disparity = np.zeros((height, width), np.float32)
    for layer in layout.layers:  # near to far
        rendered = _render_layer(linear, layer)
        if rendered is None:
            continue
        frame = rendered.frame
        disparity[frame] += layer.visibility[frame] * rendered.disparity
        combined = 0.5 * (rendered.left + rendered.right)
        for view, contribution in (("left", rendered.left), ("right", rendered.right), ("combined", combined)):
            behind = transmittance[view][frame]  # a view: updated in place
            accumulated[view][frame] += behind * contribution
            behind *= np.maximum(1.0 - contribution[..., 3:], 0.0)  # coverage >= 0: at most 1
    images = {}
    for view in views:
        colour, coverage = accumulated[view][..., :3], accumulated[view][..., 3:]
        images[view] = linear_to_srgb(np.where(coverage > _EPSILON, colour / np.maximum(coverage, _EPSILON),
                                               linear))
    return DualPixelImages(images["left"], images["right"], images["combined"], layout.visible_coc(), disparity)
