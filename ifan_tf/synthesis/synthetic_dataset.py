"""Synthetic dual-pixel defocus data from sharp photographs, in the ifan_tf TFRecord schema.

Per scene (all randomness from `numpy.random.default_rng([seed, crc32(split), index])`, so a
scene depends only on the seed, its split and its index):
1. a sharp view of a photo (skimage's bundled photos by default, or `source_dir`), cropped,
   flipped and resized (`sharp_photos`);
2. a random piecewise-smooth layout: background surface plus 0-3 objects, a focus distance and
   the signed circle of confusion per pixel (`scene_layout`);
3. left, right and combined views rendered with the dual-pixel kernel model, layer by layer
   with occlusion-aware compositing (`dual_pixel_kernels`, `defocus_render`).
Switches of `SynthesisConfig` for more realistic defocus, all off by default (their effect on
held-out and real photographs has not been measured yet): `layout="segments"` (depth edges on
the photograph's own region boundaries, `segment_layout`), `highlight_gain` (clipped highlights
bloom into bokeh discs, `defocus_render.boost_highlights`), `noise_level` and `jpeg_quality`
(sensor noise and JPEG on the defocused views only, `camera_noise`).
Records hold c, l, r, target and the true `defocus/coc` and `defocus/disparity` maps
(`ifan_tf.data.schema`). Optionally the images are also written as DPDD-style folders
(`<split>_c/source`, `<split>_c/target`, `<split>_l/source`, `<split>_r/source`, plus
`<split>_defocus/NAME.npz` with the maps), which `python -m data_prep.dpdd` can convert.

From Python: `synthesize_dataset(output_dir, num_scenes, seed, ...)`; the command line is
`python -m data_prep.synthesize` (see there). `plan_synthesis` checks the same arguments and returns
the `SynthesisPlan` that both this module and the Beam pipeline
(`python -m ifan_tf.pipelines.training_data synthesize`) write.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import os
import pathlib
import re
import zlib
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from absl import logging
from ifan_tf.data import dataset_writer, schema
from ifan_tf.io import image_io
from ifan_tf.synthesis import camera_noise, defocus_render, scene_layout, segment_layout, sharp_photos

# Bump when the rendering changes, so that interrupted runs of an older version are not resumed.
GENERATOR_VERSION = 1
FOLDER_VIEWS = {"c": "{split}_c/source", "target": "{split}_c/target", "l": "{split}_l/source",
                "r": "{split}_r/source"}
DEFOCUS_FOLDER = "{split}_defocus"
LAYOUTS = ("blobs", "segments")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")  # split and scene names (`scene_name`); no separators, no dots


@dataclasses.dataclass(frozen=True)
class SynthesisConfig:
    """Settings of the generated scenes.

    Attributes:
      image_size: (H, W) of every scene, or None for each photo's own size (cut to multiples of 8).
      max_coc: largest |CoC| diameter in pixels (each scene draws 35-100 % of it); None: 2.5 % of
        the longer image side, at least 6 pixels (DPDD's blur reaches about 2.5 % of 1680 px).
      num_objects: foreground objects per scene (None: 0 to 3 at random).
      bit_depth: 8 or 16.
      png_compression: zlib level of the PNGs in the records.
      layout: "blobs" (random blob-shaped objects) or "segments" (objects are regions of the
        photograph, `segment_layout`).
      highlight_gain: > 1 boosts near-saturated pixels by up to this factor in linear light
        before the blur (bokeh discs); 1 = off.
      noise_level: sensor noise of the defocused views (`camera_noise.add_sensor_noise`); 0 = off.
      jpeg_quality: JPEG quality (1-100) applied to the defocused views; 0 = off.
    """

    image_size: Optional[tuple[int, int]] = None
    max_coc: Optional[float] = None
    num_objects: Optional[int] = None
    bit_depth: int = 8
    png_compression: int = 1
    layout: str = "blobs"
    highlight_gain: float = 1.0
    noise_level: float = 0.0
    jpeg_quality: int = 0

    def check(self) -> None:
        """Raises ValueError naming the first bad field."""
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not self.highlight_gain >= 1.0:
            raise ValueError(f"highlight_gain must be >= 1 (1 = off), got {self.highlight_gain}")
        if not self.noise_level >= 0.0:
            raise ValueError(f"noise_level must be >= 0 (0 = off), got {self.noise_level}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 0..100 (0 = off), got {self.jpeg_quality}")


def default_max_coc(height: int, width: int) -> float:
    return max(6.0, 0.025 * max(height, width))


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of one scene: independent of every other scene."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])


def scene_name(split: str, index: int, photo: str) -> str:
    return f"{split}_{index:05d}_{re.sub(r'[^A-Za-z0-9_]+', '', photo)[:32]}"


def make_scene(split: str, index: int, photo: str, seed: int, source: sharp_photos.PhotoSource,
               config: SynthesisConfig = SynthesisConfig()) -> tuple[schema.Scene, defocus_render.DualPixelImages]:
    """Generates one scene; returns it as a schema `Scene` (quantised, with the camera's noise
    and JPEG when switched on) and the float renders (before noise and JPEG)."""
    rng = scene_rng(seed, split, index)
    sharp = sharp_photos.sample_sharp_image(source.load(photo), rng, config.image_size)
    height, width = sharp.shape[:2]
    max_coc = config.max_coc if config.max_coc is not None else default_max_coc(height, width)
    if config.layout == "segments":
        layout = segment_layout.segment_layout(sharp, rng, max_coc, config.num_objects)
    else:
        layout = scene_layout.random_layout((height, width), rng, max_coc, config.num_objects)
    images = defocus_render.render_dual_pixel(sharp, layout, config.highlight_gain)
    views = {"c": images.combined, "l": images.left, "r": images.right, "target": sharp}
    views = camera_noise.degrade_views(views, rng, config.noise_level, config.jpeg_quality)
    scene = schema.Scene(
        name=scene_name(split, index, photo),
        views={view: image_io.quantize(image, config.bit_depth) for view, image in views.items()},
        bit_depth=config.bit_depth,
        defocus={"coc": images.coc, "disparity": images.disparity},
    )
    return scene, images


def _write_folders(output_dir: pathlib.Path, split: str, scene: schema.Scene) -> None:
    for view, pattern in FOLDER_VIEWS.items():
        image_io.write_image(output_dir / pattern.format(split=split) / f"{scene.name}.png", scene.views[view],
                             scene.bit_depth)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **scene.defocus)
    image_io.atomic_write_bytes(output_dir / DEFOCUS_FOLDER.format(split=split) / f"{scene.name}.npz",
                                buffer.getvalue())


def _produce(split: str, index: int, photo: str, seed: int, source: sharp_photos.PhotoSource,
             config: SynthesisConfig, folders_dir: Optional[pathlib.Path]) -> schema.EncodedScene:
    scene, _ = make_scene(split, index, photo, seed, source, config)
    if folders_dir is not None:
        _write_folders(folders_dir, split, scene)
    return schema.encode_scene(scene, config.png_compression)


def assign_photos(splits: Mapping[str, int], names: Sequence[str],
                  photos: Union[None, Sequence[str], Mapping[str, Sequence[str]]] = None,
                  disjoint_photos: bool = True) -> dict[str, list[str]]:
    """Which photos each split draws from.

    `photos` may map split -> photo names (used as given), or list the photos to use (default:
    all `names`). With several splits and `disjoint_photos`, the photos are divided between the
    splits in list order, in proportion to their scene counts, at least one each, so that held-out
    splits show photographs never seen in training.
    """
    if isinstance(photos, Mapping):
        missing = [split for split in splits if not photos.get(split)]
        if missing:
            raise ValueError(f"photos gives no photo for splits {missing}")
        return {split: list(photos[split]) for split in splits}
    chosen = list(photos) if photos is not None else list(names)
    if not chosen:
        raise ValueError("no photos to synthesize from")
    if not disjoint_photos or len(splits) == 1:
        return {split: chosen for split in splits}
    if len(chosen) < len(splits):
        raise ValueError(f"disjoint_photos needs at least one photo per split: {len(chosen)} photos for "
                         f"{len(splits)} splits")
    total = sum(splits.values()) or 1
    shares = {split: max(1, round(len(chosen) * count / total)) for split, count in splits.items()}
    largest = max(shares, key=shares.get)
    shares[largest] += len(chosen) - sum(shares.values())
    while shares[largest] < 1:  # rounding gave the others too much: take back one at a time
        donor = max((s for s in shares if s != largest), key=shares.get)
        shares[donor] -= 1
        shares[largest] += 1
    assignment, start = {}, 0
    for split in splits:
        assignment[split] = chosen[start:start + shares[split]]
        start += shares[split]
    return assignment


def _previous_folder_files(output_dir: pathlib.Path) -> list[pathlib.Path]:
    """The folder copies a previous synthesis in `output_dir` wrote, as its summary lists them.

    The summary is only trusted as far as it names files this generator could have written: a
    plain split name, a scene name of `scene_name`'s alphabet, and a path that stays inside
    `output_dir` once symbolic links are resolved. Anything else is ignored (and logged).
    """
    try:
        previous = dataset_writer.load_summary(output_dir)
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(previous, dict) or not previous.get("generator", {}).get("write_folders"):
        return []
    root = output_dir.resolve()
    files = []
    for split, info in (previous.get("splits") or {}).items():
        names = info.get("scenes", []) if isinstance(info, dict) else []
        for name in names if isinstance(names, list) else []:
            if not (isinstance(split, str) and _PLAIN_NAME.fullmatch(split) and isinstance(name, str)
                    and _PLAIN_NAME.fullmatch(name)):
                logging.warning("%s: ignoring scene %r of split %r (not a name this generator writes)",
                                output_dir / dataset_writer.SUMMARY_FILE, name, split)
                continue
            paths = [output_dir / p.format(split=split) / f"{name}.png" for p in FOLDER_VIEWS.values()]
            paths.append(output_dir / DEFOCUS_FOLDER.format(split=split) / f"{name}.npz")
            files.extend(path for path in paths if path.is_file() and path.resolve().is_relative_to(root))
    return files


def _remove_previous_folders(output_dir: pathlib.Path) -> None:
    """Deletes the folder copies of a previous synthesis (before overwriting it); nothing outside `output_dir`."""
    for path in _previous_folder_files(output_dir):
        path.unlink()


@dataclasses.dataclass
class SynthesisPlan:
    """A checked synthesis: what every scene is made from, and how the output is written.

    Built by `plan_synthesis`; `synthesize_dataset` writes it in this process, and
    `ifan_tf.pipelines.training_data` writes the same shards with Apache Beam workers.

    Attributes:
      output_dir: destination folder.
      splits: split name -> number of scenes (in writing order).
      seed: the seed.
      config: the scene settings.
      source: the sharp photographs.
      photos: split -> photo names; scene `i` of a split uses `photos[split][i % len(...)]`.
      examples_per_shard: records per shard at most.
      write_folders: also write DPDD-style folders into `output_dir`.
      generator: the `"generator"` entry of the summary (version, seed, splits, photos, config, ...).
      settings: what the writer fingerprints to recognise an interrupted run of the same synthesis.
    """

    output_dir: pathlib.Path
    splits: dict
    seed: int
    config: SynthesisConfig
    source: sharp_photos.PhotoSource
    photos: dict
    examples_per_shard: int
    write_folders: bool
    generator: dict
    settings: dict

    def photo(self, split: str, index: int) -> str:
        return self.photos[split][index % len(self.photos[split])]

    def produce(self, split: str, index: int) -> schema.EncodedScene:
        """Scene `index` of `split`, encoded (and written to the folders with `write_folders`)."""
        return _produce(split, index, self.photo(split, index), self.seed, self.source, self.config,
                        self.output_dir if self.write_folders else None)

    def open_writer(self, overwrite: bool) -> dataset_writer.DatasetWriter:
        """Checks and prepares `output_dir` (see `dataset_writer.DatasetWriter`), removing the folder
        copies of a previous synthesis first when overwriting; returns the writer."""
        if overwrite and self.write_folders:
            _remove_previous_folders(self.output_dir)
        writer = dataset_writer.DatasetWriter(self.output_dir, self.settings, overwrite)
        if self.write_folders:
            for split in self.splits:
                for pattern in list(FOLDER_VIEWS.values()) + [DEFOCUS_FOLDER]:
                    (self.output_dir / pattern.format(split=split)).mkdir(parents=True, exist_ok=True)
        return writer

    def summary_extra(self) -> dict:
        """What the summary holds besides the splits."""
        return {"dataset": "synthetic", "generator": self.generator}


def plan_synthesis(output_dir: os.PathLike, num_scenes: Optional[int] = None, seed: int = 0, *,
                   splits: Optional[Mapping[str, int]] = None, source_dir: Optional[os.PathLike] = None,
                   photos: Union[None, Sequence[str], Mapping[str, Sequence[str]]] = None,
                   disjoint_photos: bool = True, image_size: Optional[tuple[int, int]] = None,
                   max_coc: Optional[float] = None, num_objects: Optional[int] = None, bit_depth: int = 8,
                   examples_per_shard: int = 16, png_compression: int = 1, write_folders: bool = False,
                   layout: str = "blobs", highlight_gain: float = 1.0, noise_level: float = 0.0,
                   jpeg_quality: int = 0) -> SynthesisPlan:
    """Checks the arguments of `synthesize_dataset` (same meaning) and returns the `SynthesisPlan`."""
    if splits is None:
        if num_scenes is None:
            raise ValueError("give num_scenes or splits")
        splits = {"train": int(num_scenes)}
    elif num_scenes is not None:
        raise ValueError("give either num_scenes or splits, not both")
    if not splits or any(count < 1 for count in splits.values()):
        raise ValueError(f"every split needs at least one scene, got {dict(splits)}")
    if image_size is not None:
        image_size = (int(image_size[0]), int(image_size[1]))
        if min(image_size) < 8:
            raise ValueError(f"image_size must be at least 8x8, got {image_size}")
    config = SynthesisConfig(image_size, max_coc, num_objects, bit_depth, png_compression, layout,
                             float(highlight_gain), float(noise_level), int(jpeg_quality))
    config.check()
    if bit_depth not in image_io.SUPPORTED_BIT_DEPTHS:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    source = sharp_photos.PhotoSource(source_dir)
    plan = assign_photos(splits, source.names, photos, disjoint_photos)
    for names in plan.values():
        source.check(names)
    generator = {
        "version": GENERATOR_VERSION, "seed": int(seed), "splits": dict(splits), "photos": plan,
        "config": dataclasses.asdict(config), "write_folders": bool(write_folders),
        "source": str(source.source_dir) if source.source_dir else "skimage.data",
    }
    settings = {"generator": generator, "examples_per_shard": examples_per_shard, "source": source.fingerprint()}
    return SynthesisPlan(pathlib.Path(output_dir), dict(splits), int(seed), config, source, plan, examples_per_shard,
                         bool(write_folders), generator, settings)


def synthesize_dataset(output_dir: os.PathLike, num_scenes: Optional[int] = None, seed: int = 0, *,
                       splits: Optional[Mapping[str, int]] = None, source_dir: Optional[os.PathLike] = None,
                       photos: Union[None, Sequence[str], Mapping[str, Sequence[str]]] = None,
                       disjoint_photos: bool = True, image_size: Optional[tuple[int, int]] = None,
                       max_coc: Optional[float] = None, num_objects: Optional[int] = None, bit_depth: int = 8,
                       examples_per_shard: int = 16, png_compression: int = 1, write_folders: bool = False,
                       overwrite: bool = False, num_workers: Optional[int] = None,
                       show_progress: bool = True, layout: str = "blobs", highlight_gain: float = 1.0,
                       noise_level: float = 0.0, jpeg_quality: int = 0) -> dict:
    """Generates a synthetic dual-pixel data set as sharded TFRecords (and optionally folders).

    Args:
      output_dir: destination (see `dataset_writer` for the layout and overwrite rules).
      num_scenes: scenes of a single split "train" (or use `splits`).
      seed: the seed; equal arguments give byte-identical output.
      splits: split name -> number of scenes, e.g. {"train": 64, "val": 8}.
      source_dir: folder of sharp photos (recursive); default: skimage's bundled photographs.
      photos: photo names to use (all by default), or split -> names.
      disjoint_photos: give each split its own photos (see `assign_photos`).
      image_size: (H, W) of every scene; None keeps each photo's size (cut to multiples of 8).
      max_coc, num_objects, bit_depth, png_compression, layout, highlight_gain, noise_level,
        jpeg_quality: see `SynthesisConfig` (the last four are the realism switches, off by default).
      examples_per_shard: records per shard at most.
      write_folders: also write DPDD-style folders of PNGs and .npz maps into `output_dir`.
      overwrite: replace an existing data set in `output_dir`.
      num_workers: scenes generated in parallel (threads; default: all cores).
    Returns:
      The summary written to `output_dir/dataset_summary.json`; it includes the photos per split.
    """
    plan = plan_synthesis(output_dir, num_scenes, seed, splits=splits, source_dir=source_dir, photos=photos,
                          disjoint_photos=disjoint_photos, image_size=image_size, max_coc=max_coc,
                          num_objects=num_objects, bit_depth=bit_depth, examples_per_shard=examples_per_shard,
                          png_compression=png_compression, write_folders=write_folders, layout=layout,
                          highlight_gain=highlight_gain, noise_level=noise_level, jpeg_quality=jpeg_quality)
    writer = plan.open_writer(overwrite)
    for split, count in plan.splits.items():
        producers = [functools.partial(plan.produce, split, index) for index in range(count)]
        writer.write_split(split, producers, examples_per_shard=examples_per_shard,
                           num_workers=num_workers or os.cpu_count() or 1, show_progress=show_progress)
    return writer.finish(plan.summary_extra())
