"""Scenes stored as image files in view folders: matching file names, checking, loading.

A converter first lists every view folder, matches files of one scene across views by name,
reads every file's header, and collects all problems (missing views, unmatched names, differing
sizes or bit depths, unreadable files) so that they can be reported together, in one error,
before anything is written.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import pathlib
from typing import Mapping, Optional, Sequence

from ifan_tf import image_io
from ifan_tf.data import schema

MAX_LISTED_PROBLEMS = 60


class DatasetLayoutError(ValueError):
    """The input folder does not hold a consistent data set; the message lists every problem."""


@dataclasses.dataclass(frozen=True)
class SceneFiles:
    """The files of one scene: view name ('c', 'l', 'r', 'target') -> image file."""

    name: str
    paths: Mapping[str, pathlib.Path]


def list_images(folder: os.PathLike) -> list[pathlib.Path]:
    """Image files directly in `folder` (by suffix, case-insensitive; hidden files ignored), sorted."""
    folder = pathlib.Path(folder)
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and not path.name.startswith(".")
                  and path.suffix.lower() in image_io.IMAGE_SUFFIXES)


def scene_key(path: pathlib.Path, strip_suffixes: Sequence[str] = ()) -> str:
    """File stem without a view suffix such as `_L` (DPDD names left views `NAME_L.png` in some copies)."""
    stem = path.stem
    for suffix in strip_suffixes:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def match_views(label: str, folders: Mapping[str, pathlib.Path],
                strip_suffixes: Optional[Mapping[str, Sequence[str]]] = None
                ) -> tuple[list[SceneFiles], list[str]]:
    """Matches the files of each scene across view folders by name.

    Args:
      label: prefix for problem messages (e.g. the split name).
      folders: view -> folder holding that view's images.
      strip_suffixes: view -> name suffixes to remove before matching (e.g. {'l': ('_L',)}).
    Returns:
      (scenes with every view, sorted by name; problems: missing folders, duplicate names, scenes
      lacking a view).
    """
    strip_suffixes = strip_suffixes or {}
    problems = []
    keyed: dict[str, dict[str, pathlib.Path]] = {}
    folder_missing = False
    for view, folder in folders.items():
        if not folder.is_dir():
            problems.append(f"{label}: folder {folder} for view {view} is missing")
            folder_missing = True
            continue
        files = {}
        for path in list_images(folder):
            key = scene_key(path, strip_suffixes.get(view, ()))
            if key in files:
                problems.append(f"{label}: {files[key].name} and {path.name} in {folder} are both scene {key!r}")
            files[key] = path
        if not files:
            problems.append(f"{label}: folder {folder} holds no images")
        keyed[view] = files
    if folder_missing:  # listing every scene as lacking that view would only hide the cause
        return [], problems
    scenes = []
    for key in sorted(set().union(*[set(files) for files in keyed.values()])):
        missing = [view for view in folders if key not in keyed[view]]
        if missing:
            present = ", ".join(str(keyed[view][key]) for view in folders if key in keyed[view])
            where = ", ".join(f"{view} in {folders[view]}" for view in missing)
            problems.append(f"{label}: scene {key!r} has no file for {where} (has {present})")
            continue
        scenes.append(SceneFiles(key, {view: keyed[view][key] for view in folders}))
    return scenes, problems


def check_headers(splits: Mapping[str, Sequence[SceneFiles]], num_workers: int = 4
                  ) -> tuple[dict[tuple[str, str], image_io.ImageHeader], list[str]]:
    """Reads every file's header; finds unreadable files and views of one scene that differ.

    Returns ((split, scene name) -> the scene's common header, problems). Problems include a
    data set mixing 8- and 16-bit scenes.
    """
    jobs = [(split, scene, view, path) for split, scenes in splits.items() for scene in scenes
            for view, path in scene.paths.items()]

    def read(job):
        try:
            return image_io.read_image_header(job[3]), None
        except image_io.ImageFileError as error:
            return None, str(error)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, num_workers)) as executor:
        results = list(executor.map(read, jobs))
    problems = []
    by_scene = collections.defaultdict(dict)
    for (split, scene, view, path), (header, error) in zip(jobs, results):
        if error:
            problems.append(f"{split}: {error}")
        else:
            by_scene[(split, scene.name)][view] = (header, path)
    headers = {}
    depth_scenes = collections.defaultdict(list)
    for split, scenes in splits.items():
        for scene in scenes:
            found = by_scene.get((split, scene.name), {})
            if len(found) != len(scene.paths):
                continue
            sizes = {view: (h.width, h.height) for view, (h, _) in found.items()}
            depths = {view: h.bit_depth for view, (h, _) in found.items()}
            if len(set(sizes.values())) > 1:
                listing = ", ".join(f"{found[v][1].name} {w}x{h}" for v, (w, h) in sizes.items())
                problems.append(f"{split}: scene {scene.name!r} views differ in size: {listing}")
                continue
            if len(set(depths.values())) > 1:
                listing = ", ".join(f"{found[v][1].name} {d}-bit" for v, d in depths.items())
                problems.append(f"{split}: scene {scene.name!r} views differ in bit depth: {listing}")
                continue
            header = next(iter(found.values()))[0]
            headers[(split, scene.name)] = header
            depth_scenes[header.bit_depth].append(f"{split}/{scene.name}")
    if len(depth_scenes) > 1:
        listing = "; ".join(f"{depth}-bit: {len(names)} scenes (e.g. {', '.join(names[:3])})"
                            for depth, names in sorted(depth_scenes.items()))
        problems.append(f"the data set mixes bit depths ({listing}); convert 8- and 16-bit copies separately")
    return headers, problems


def raise_if_problems(input_dir: os.PathLike, problems: Sequence[str]) -> None:
    """Raises `DatasetLayoutError` listing `problems` (capped) when there are any."""
    if not problems:
        return
    shown = [f"  - {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        shown.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    raise DatasetLayoutError(f"{input_dir}: {len(problems)} problem(s) found, nothing was written:\n"
                             + "\n".join(shown))


def load_scene(scene: SceneFiles, header: image_io.ImageHeader) -> schema.Scene:
    """Reads a scene's files losslessly; checks each against the header checked earlier."""
    views = {}
    for view, path in scene.paths.items():
        pixels, bit_depth = image_io.read_pixels(path)
        if pixels.shape[:2] != (header.height, header.width) or bit_depth != header.bit_depth:
            raise image_io.ImageFileError(
                f"{path}: decodes to {pixels.shape[1]}x{pixels.shape[0]} {bit_depth}-bit, header said "
                f"{header.width}x{header.height} {header.bit_depth}-bit (file changed during conversion?)")
        views[view] = pixels
    return schema.Scene(scene.name, views, header.bit_depth)


def listing_fingerprint(input_dir: os.PathLike, splits: Mapping[str, Sequence[SceneFiles]]) -> list:
    """JSON-able description of the input files (relative path, size, modification time)."""
    input_dir = pathlib.Path(input_dir)
    entries = []
    for split, scenes in splits.items():
        for scene in scenes:
            for view, path in sorted(scene.paths.items()):
                stat = path.stat()
                entries.append([split, scene.name, view, os.path.relpath(path, input_dir), stat.st_size,
                                stat.st_mtime_ns])
    return entries
