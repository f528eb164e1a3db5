"""Random piecewise-smooth 3-D layouts for synthetic defocus: depth layers, focus, signed CoC.

A layout is a background surface plus a few foreground objects, each a smooth surface of inverse
depth ("nearness" u: larger is closer) cut out by a soft, blob-shaped mask. Objects are always
in front of what they cover, so the visible depth map is piecewise smooth with discontinuities
at object outlines. A focus nearness u_f is drawn (usually on a visible surface, so part of the
image is sharp), and the thin-lens circle of confusion, linear in inverse depth, is
`coc = gain * (u_f - u)`: positive behind the focal plane, negative in front of it.

Arrays are `[H, W] float32`; masks are in [0, 1].
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import cv2
import numpy as np


@dataclasses.dataclass
class DepthLayer:
    """One surface: its signed CoC over the whole image and its visible part.

    Attributes:
      coc: `[H, W] float32` signed CoC diameter (pixels) the surface would have at every pixel.
      visibility: `[H, W] float32 in [0, 1]` how much of each pixel shows this surface.
    """

    coc: np.ndarray
    visibility: np.ndarray


@dataclasses.dataclass
class SceneLayout:
    """Depth layers ordered near to far; their visibilities sum to 1 at every pixel."""

    layers: list[DepthLayer]

    def visible_coc(self) -> np.ndarray:
        """`[H, W] float32` signed CoC of what each pixel shows (visibility-weighted at soft edges)."""
        return np.sum([layer.coc * layer.visibility for layer in self.layers], axis=0).astype(np.float32)


def smooth_noise(shape: tuple[int, int], rng: np.random.Generator, cells: int = 4) -> np.ndarray:
    """`[H, W] float32` smooth random field in about [-1, 1] (bicubic upsampling of a coarse grid)."""
    coarse = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def plane(shape: tuple[int, int], offset: float, slope_x: float, slope_y: float) -> np.ndarray:
    """`[H, W] float32` plane `offset + slope_x * (x/W - 1/2) + slope_y * (y/H - 1/2)`."""
    height, width = shape
    x = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    y = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    return (offset + slope_x * x + slope_y * y).astype(np.float32)


def blob_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """`[H, W] float32` soft mask of a random star-shaped blob with a ~1-pixel anti-aliased edge."""
    height, width = shape
    size = min(height, width)
    centre_y, centre_x = rng.uniform(0.15, 0.85) * height, rng.uniform(0.15, 0.85) * width
    radius_y, radius_x = rng.uniform(0.12, 0.35, size=2) * size
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dy, dx = y - centre_y, x - centre_x
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / radius_x
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / radius_y
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(theta)
    for harmonic in (2, 3, 5):
        boundary += rng.uniform(0.0, 0.12) * np.cos(harmonic * theta + rng.uniform(0, 2 * np.pi))
    edge_pixels = (boundary - rho) * min(radius_x, radius_y)  # ~ signed distance to the outline
    return np.clip(edge_pixels + 0.5, 0.0, 1.0).astype(np.float32)


def random_layout(shape: tuple[int, int], rng: np.random.Generator, max_coc: float,
                  num_objects: Optional[int] = None, focus: Optional[float] = None) -> SceneLayout:
    """Draws a random layout with |CoC| up to about `max_coc` pixels.

    Args:
      shape: (H, W).
      rng: random generator (the only source of randomness).
      max_coc: the largest |CoC| in the image is drawn in [0.35, 1] * max_coc.
      num_objects: foreground objects (default: 0 to 3 at random).
      focus: nearness in focus (default: drawn, usually on a visible surface).
    """
    background = plane(shape, rng.uniform(0.0, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(-0.2, 0.7))
    background += 0.08 * smooth_noise(shape, rng)
    if num_objects is None:
        num_objects = int(rng.integers(0, 4))
    masks = (blob_mask(shape, rng) for _ in range(num_objects))  # lazily: same draw order as ever
    return layout_from_masks(background, masks, rng, max_coc, focus)


def layout_from_masks(background: np.ndarray, masks: Iterable[np.ndarray], rng: np.random.Generator, max_coc: float,
                      focus: Optional[float] = None) -> SceneLayout:
    """A layout of `background` (`[H, W]` nearness) and one object per mask, later masks nearer.

    Each object is a slightly tilted plane in front of everything it covers; focus and CoC
    scale are drawn as in `random_layout`.

    Args:
      background: `[H, W] float32` nearness of the background surface.
      masks: `[H, W] float32 in [0, 1]` object masks, far to near (empty ones are left out).
      rng, max_coc, focus: see `random_layout`.
    """
    shape = background.shape
    surfaces, kept = [background.astype(np.float32)], [np.ones(shape, np.float32)]
    for mask in masks:
        covered = mask > 0
        if not covered.any():
            continue
        # In front of everything it covers, with a slight tilt of its own.
        front = max(float(surface[covered].max()) for surface in surfaces)
        tilt = plane(shape, 0.0, rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1))
        surface = front + rng.uniform(0.08, 0.5) + tilt - float(tilt[covered].min())
        surfaces.append(surface.astype(np.float32))
        kept.append(mask.astype(np.float32))
    masks = kept

    # Visibility, nearest first: the last object drawn is in front of all earlier ones.
    visibilities = []
    remaining = np.ones(shape, np.float32)
    for mask in reversed(masks):
        visibilities.append(remaining * mask)
        remaining = remaining * (1.0 - mask)
    surfaces = surfaces[::-1]

    visible_nearness = np.sum([s * v for s, v in zip(surfaces, visibilities)], axis=0)
    if focus is None:
        choice = rng.uniform()
        if choice < 0.85:  # on a visible point: some part of the image is sharp
            flat = int(rng.integers(visible_nearness.size))
            focus = float(visible_nearness.reshape(-1)[flat])
        else:
            focus = float(rng.uniform(visible_nearness.min(), visible_nearness.max()))
    spread = float(np.abs(focus - visible_nearness).max())
    target = rng.uniform(0.35, 1.0) * max_coc
    gain = target / spread if spread > 1e-6 else 0.0
    layers = [DepthLayer(coc=(gain * (focus - surface)).astype(np.float32), visibility=visibility)
              for surface, visibility in zip(surfaces, visibilities)]
    return SceneLayout(layers)


def flat_layout(shape: tuple[int, int], coc: float) -> SceneLayout:
    """A single fronto-parallel plane with a constant signed CoC (for tests and demos)."""
    return SceneLayout([DepthLayer(np.full(shape, coc, np.float32), np.ones(shape, np.float32))])
