"""Scenes stored as image files in view folders: matching file names, checking, loading.

A converter first lists every view folder, matches files of one scene across views by name
(`match_views`), inspects every file (`data_prep.inspection`: header, declared size, decoded
body), and collects all problems (missing views, unmatched names, differing sizes or bit depths,
unreadable or corrupt files) so that they can be reported together, in one error
(`raise_if_problems`), before anything is written.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Mapping, Optional, Sequence

from absl import logging

from ifan_tf.data import schema
from ifan_tf.io import image_io

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


def raise_if_problems(input_dir: os.PathLike, problems: Sequence[str], hint: str = "") -> None:
    """Raises `DatasetLayoutError` listing `problems`, then `hint` (a line), when there are any.

    The message lists the first `MAX_LISTED_PROBLEMS`; the others are logged (absl, stderr), so
    every problem is reported.
    """
    if not problems:
        return
    shown = [f"  - {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        for problem in problems[MAX_LISTED_PROBLEMS:]:
            logging.error("%s", problem)
        shown.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more (logged above)")
    if hint:
        shown.append(hint)
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
