"""Checking TFRecord shards before they feed a pipeline: corrupt, truncated or malformed records.

TensorFlow's own read errors ("corrupted record at 1028") do not say which file they come from,
and a record that decodes to the wrong thing would give a silently wrong batch. So the pipelines
first read every shard once here (CRCs are checked by TensorFlow's reader), parse every record
with the schema and check each PNG's header and trailer against the record's size and bit depth.
Each PNG body and defocus map is checked too (`integrity`), so a record whose image data is
damaged is found here, counted and named, not in the middle of training. The result says, per shard, how many records can be read, which of them are bad and why, and
which views and bit depths the good records have.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Iterable, Optional, Sequence

import tensorflow as tf
from absl import logging

from ifan_tf.data import integrity, schema
from ifan_tf.io import image_io

_PNG_TRAILER = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class CorruptShardError(ValueError):
    """One or more shards hold corrupt, truncated or malformed records."""


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """A record that cannot be used: its index in the shard and why."""

    index: int
    reason: str


@dataclasses.dataclass
class ShardReport:
    """What reading one shard found.

    Attributes:
      path: the shard file.
      num_readable: records read before the end of the file or a read error.
      read_error: TensorFlow's message when reading stopped early (corrupt or truncated data);
        the records from `num_readable` on are lost.
      bad_records: readable records that are malformed (indices < num_readable).
      views: views present in every good record (None when there is no good record).
      bit_depths: bit depths of the good records.
      min_height, min_width: smallest image size among the good records (0 when none).
      all_have_defocus: every good record holds the synthetic defocus maps.
    """

    path: str
    num_readable: int = 0
    read_error: Optional[str] = None
    bad_records: list[BadRecord] = dataclasses.field(default_factory=list)
    views: Optional[frozenset] = None
    bit_depths: set = dataclasses.field(default_factory=set)
    min_height: int = 0
    min_width: int = 0
    all_have_defocus: bool = True

    @property
    def num_good(self) -> int:
        return self.num_readable - len(self.bad_records)

    @property
    def is_clean(self) -> bool:
        return self.read_error is None and not self.bad_records

    def problems(self) -> list[str]:
        """Human-readable problems of this shard (empty when clean)."""
        lines = [f"record {bad.index}: {bad.reason}" for bad in self.bad_records]
        if self.read_error is not None:
            lines.append(f"unreadable after record {self.num_readable - 1 if self.num_readable else 'none'}"
                         f" ({self.num_readable} records readable): {self.read_error}")
        return lines


def check_record(serialized: bytes, source: str, required_views: Sequence[str] = (),
                 body_views: Optional[Sequence[str]] = None, check_defocus: bool = True) -> schema.EncodedScene:
    """Parses a record and checks it against the schema; raises ValueError naming `source`.

    `body_views` (None: every view present) and `check_defocus` choose the payloads whose
    compressed data is checked (the costly part, about one inflate): those a pipeline decodes.

    Checks: the schema's fields are present, the bit depth is 8 or 16, the size is positive,
    `required_views` are present, every PNG's header matches the record's size and bit depth,
    every PNG body is intact (`integrity.check_png_body`: chunk CRCs, image data inflating to the
    size its header implies), and every defocus map inflates to exactly `4 * H * W` bytes (never
    more: a decompression bomb is refused after one byte too many).
    """
    encoded = schema.parse_scene_bytes(serialized, source)
    where = f"{source} (scene {encoded.name!r})"
    if encoded.bit_depth not in image_io.SUPPORTED_BIT_DEPTHS:
        raise ValueError(f"{where}: bit depth {encoded.bit_depth} is not 8 or 16")
    if encoded.height <= 0 or encoded.width <= 0:
        raise ValueError(f"{where}: size {encoded.width}x{encoded.height} is empty")
    missing = [view for view in required_views if view not in encoded.png]
    if missing:
        raise ValueError(f"{where}: lacks required views {missing} (has {list(encoded.views)})")
    for view, data in encoded.png.items():
        header = image_io.png_header(data, f"{where} view {view}")
        if (header.height, header.width, header.bit_depth) != (encoded.height, encoded.width, encoded.bit_depth):
            raise ValueError(f"{where}: view {view} PNG is {header.width}x{header.height} {header.bit_depth}-bit, "
                             f"record says {encoded.width}x{encoded.height} {encoded.bit_depth}-bit")
        if not data.endswith(_PNG_TRAILER):
            raise ValueError(f"{where}: view {view} PNG data is truncated (no end chunk)")
        if body_views is None or view in body_views:
            integrity.check_png_body(data, f"{where} view {view}")
    for map_name, data in (encoded.defocus.items() if check_defocus else ()):
        integrity.check_inflated_size(data, 4 * encoded.height * encoded.width, where, f"defocus map {map_name}")
    return encoded


def inspect_shard(path: str, required_views: Sequence[str] = (), body_views: Optional[Sequence[str]] = None,
                  check_defocus: bool = True) -> ShardReport:
    """Reads one shard completely and reports what is usable (see `ShardReport`, `check_record`)."""
    report = ShardReport(path=str(path))
    views = None
    heights, widths = [], []
    iterator = iter(tf.data.TFRecordDataset(str(path)))
    while True:
        try:
            record = next(iterator)
        except StopIteration:
            break
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.InvalidArgumentError) as error:
            report.read_error = error.message.split("[Op:")[0].split("}}")[-1].strip()
            break
        index = report.num_readable
        report.num_readable += 1
        try:
            encoded = check_record(record.numpy(), f"{path} record {index}", required_views, body_views,
                                   check_defocus)
        except ValueError as error:
            report.bad_records.append(BadRecord(index, str(error)))
            continue
        present = frozenset(encoded.views)
        views = present if views is None else views & present
        report.bit_depths.add(encoded.bit_depth)
        report.all_have_defocus &= set(encoded.defocus) == set(schema.DEFOCUS_MAPS)
        heights.append(encoded.height)
        widths.append(encoded.width)
    report.views = views
    report.min_height = min(heights, default=0)
    report.min_width = min(widths, default=0)
    return report


def inspect_shards(paths: Iterable[str], required_views: Sequence[str] = (), num_workers: int = 4,
                   show_progress: bool = False, body_views: Optional[Sequence[str]] = None,
                   check_defocus: bool = True) -> list[ShardReport]:
    """`inspect_shard` over many shards in parallel threads; reports are in the order of `paths`."""
    paths = [str(path) for path in paths]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, num_workers)) as executor:
        futures = [executor.submit(inspect_shard, path, tuple(required_views),
                                   None if body_views is None else tuple(body_views), check_defocus)
                   for path in paths]
        if show_progress:
            from tqdm import tqdm
            for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="checking shards"):
                pass
        return [future.result() for future in futures]


def describe_problems(reports: Sequence[ShardReport], max_lines_per_shard: int = 5) -> str:
    """One text listing every shard with problems and its first problems."""
    lines = []
    for report in reports:
        problems = report.problems()
        if problems:
            lines.append(f"{report.path}:")
            lines.extend(f"  {problem}" for problem in problems[:max_lines_per_shard])
            if len(problems) > max_lines_per_shard:
                lines.append(f"  ... and {len(problems) - max_lines_per_shard} more")
    return "\n".join(lines)


def handle_problems(reports: Sequence[ShardReport], skip_corrupt: bool) -> int:
    """Raises `CorruptShardError` naming every bad shard, or (skip_corrupt) logs and counts them.

    Returns the number of records that will be skipped: the bad records plus, for a shard whose
    reading stopped early, one for the unreadable rest (its true record count is unknown).
    """
    bad = [report for report in reports if not report.is_clean]
    if not bad:
        return 0
    text = describe_problems(bad)
    skipped = sum(len(report.bad_records) + (report.read_error is not None) for report in bad)
    if not skip_corrupt:
        raise CorruptShardError(
            f"{len(bad)} of {len(reports)} shards hold corrupt, truncated or malformed records "
            f"(pass skip_corrupt=True to skip them):\n{text}")
    logging.warning("Skipping %d corrupt or malformed records (or unreadable shard tails) in %d shards:\n%s",
                    skipped, len(bad), text)
    return skipped
