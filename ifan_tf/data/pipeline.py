"""tf.data input pipelines over the schema's TFRecord shards: training crops and whole eval images.

Training (`make_train_dataset`): shards are read in parallel (interleaved), PNGs decoded at their
bit depth, optionally cached in memory as integer pixels, shuffled, augmented as in the spec
(`ifan_tf.data.augment`, the same draw for every view of an example), batched and prefetched.
Evaluation (`make_eval_dataset`): whole images in file order with their scene names.

Before reading, every shard is checked once (`shard_inspection`): corrupt, truncated or malformed
records, including a damaged PNG body of a view that will be decoded or a damaged defocus map that
will be decoded, raise an error naming the shard and record, or with `skip_corrupt=True` are
skipped, counted and logged. Decoding re-checks each record in the graph (views present, PNG size) and names the shard
and scene if anything is wrong, so a bad record never becomes a silently wrong batch.
"""
from __future__ import annotations

import dataclasses
import os
import random
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf
from absl import logging

from ifan_tf.data import augment as augment_lib
from ifan_tf.data import schema
from ifan_tf.data import shard_inspection

FilePatterns = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
AUTOTUNE = tf.data.AUTOTUNE
_READ_BUFFER_BYTES = 8 << 20


def resolve_files(file_patterns: FilePatterns) -> list[str]:
    """Sorted, de-duplicated files matching glob patterns; raises FileNotFoundError if none match."""
    if isinstance(file_patterns, (str, os.PathLike)):
        file_patterns = [file_patterns]
    patterns = [os.fspath(pattern) for pattern in file_patterns]
    files = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {patterns}")
    return files


@dataclasses.dataclass
class RecordSources:
    """Shards to read and which records of each to use.

    Attributes:
      files: shard paths.
      limits: per shard, how many records to read (-1: all).
      bad_indices: per shard, indices of records to skip.
      views: views present in every usable record (None if unknown: not inspected).
      bit_depths: bit depths of the usable records (empty if unknown).
      min_size: smallest (height, width) among the usable records (None if unknown).
      skipped_records: records skipped as corrupt (plus one per shard with an unreadable tail).
      lacking_defocus: shards with usable records that have no defocus maps.
    """

    files: list[str]
    limits: list[int]
    bad_indices: list[list[int]]
    views: Optional[frozenset] = None
    bit_depths: set = dataclasses.field(default_factory=set)
    min_size: Optional[tuple[int, int]] = None
    skipped_records: int = 0
    lacking_defocus: list[str] = dataclasses.field(default_factory=list)


def inspect_sources(files: Sequence[str], required_views: Sequence[str] = (), skip_corrupt: bool = False,
                    verify_records: bool = True, bit_depth: Optional[int] = None,
                    body_views: Optional[Sequence[str]] = None, check_defocus: bool = True) -> RecordSources:
    """Checks shards (unless `verify_records` is False) and decides which records to read.

    The PNG bodies of `body_views` (None: all) and, with `check_defocus`, the defocus maps are
    checked too (`shard_inspection.check_record`): a record whose data the pipeline would fail to
    decode is skipped and counted (`skip_corrupt`) or named in the error, before reading starts.

    Raises `shard_inspection.CorruptShardError` naming the shards with bad records (unless
    `skip_corrupt`), and ValueError when records have another bit depth than `bit_depth`.
    """
    if not verify_records:
        return RecordSources(list(files), [-1] * len(files), [[] for _ in files])
    reports = shard_inspection.inspect_shards(files, required_views, body_views=body_views,
                                              check_defocus=check_defocus)
    skipped = shard_inspection.handle_problems(reports, skip_corrupt)
    usable = [report for report in reports if report.num_good > 0]
    if not usable:
        raise shard_inspection.CorruptShardError(f"no usable record in {len(files)} shards: {list(files)}")
    if bit_depth is not None:
        wrong = [f"{report.path} ({sorted(report.bit_depths)})" for report in usable
                 if report.bit_depths - {bit_depth}]
        if wrong:
            raise ValueError(f"bit_depth={bit_depth} was requested but these shards hold other bit depths: "
                             + ", ".join(wrong))
    views = frozenset.intersection(*[report.views for report in usable])
    return RecordSources(
        files=[report.path for report in usable],
        limits=[report.num_readable for report in usable],
        bad_indices=[[bad.index for bad in report.bad_records] for report in usable],
        views=views,
        bit_depths=set().union(*[report.bit_depths for report in usable]),
        min_size=(min(r.min_height for r in usable), min(r.min_width for r in usable)),
        skipped_records=skipped,
        lacking_defocus=[report.path for report in usable if not report.all_have_defocus],
    )


def decode_dtype(bit_depth: Optional[int], sources: RecordSources) -> tf.DType:
    """uint8 when every record is 8-bit, else uint16 (8-bit PNGs then read as x*257: same floats)."""
    if bit_depth is not None:
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8, 16 or None, got {bit_depth!r}")
        return tf.uint8 if bit_depth == 8 else tf.uint16
    return tf.uint8 if sources.bit_depths == {8} else tf.uint16


def read_records(sources: RecordSources, *, shuffle_seed: Optional[int], shuffle_files: bool, repeat: bool,
                 cycle_length: int, deterministic: bool) -> tf.data.Dataset:
    """Dataset of `(shard_path, serialized_record)` pairs, reading shards in parallel."""
    max_bad = max([len(bad) for bad in sources.bad_indices] + [1])
    bad = np.full((len(sources.files), max_bad), -1, dtype=np.int64)
    for row, indices in enumerate(sources.bad_indices):
        bad[row, :len(indices)] = indices
    files = tf.data.Dataset.from_tensor_slices(
        (tf.constant(sources.files), tf.constant(sources.limits, tf.int64), tf.constant(bad)))
    if shuffle_files:
        files = files.shuffle(len(sources.files), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()

    def read_shard(path, limit, bad_indices):
        records = tf.data.TFRecordDataset(path, buffer_size=_READ_BUFFER_BYTES).take(limit)
        if sources.skipped_records:
            records = records.enumerate().filter(
                lambda index, _: tf.logical_not(tf.reduce_any(tf.equal(bad_indices, index))))
            records = records.map(lambda _, record: record)
        return records.map(lambda record: (path, record))

    return files.interleave(read_shard, cycle_length=max(1, min(cycle_length, len(sources.files))),
                            block_length=1, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def _checked(tensor: tf.Tensor, condition: tf.Tensor, message: list) -> tf.Tensor:
    assertion = tf.debugging.Assert(condition, message, summarize=8)
    with tf.control_dependencies([assertion]):
        return tf.identity(tensor)


def decode_record(path: tf.Tensor, serialized: tf.Tensor, views: Sequence[str], dtype: tf.DType,
                  min_size: int = 0, with_defocus: bool = False) -> dict[str, tf.Tensor]:
    """Parses and decodes one record in the graph; failed checks raise naming shard and scene.

    Returns a dict with `name` (string), `bit_depth` (int32), each view in `views` as
    `[H, W, 3]` of `dtype`, and with `with_defocus` the maps `coc` and `disparity` `[H, W] float32`.
    """
    parsed = schema.parse_record(serialized)
    name = parsed[schema.NAME_KEY]
    height = tf.cast(parsed[schema.HEIGHT_KEY], tf.int32)
    width = tf.cast(parsed[schema.WIDTH_KEY], tf.int32)
    record_depth = tf.cast(parsed[schema.BIT_DEPTH_KEY], tf.int32)
    where = ["shard", path, "scene", name]
    output = {"name": name, "bit_depth": record_depth}
    for view in views:
        png = _checked(parsed[schema.image_key(view)], tf.strings.length(parsed[schema.image_key(view)]) > 0,
                       where + [f"lacks view: {view}"])
        pixels = schema.decode_view(png, dtype)
        shape = tf.shape(pixels)
        size_ok = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
        size_ok = tf.logical_and(size_ok, tf.logical_and(height >= min_size, width >= min_size))
        output[view] = _checked(pixels, size_ok, where + [f"view {view!r} size (h, w) is", shape[:2],
                                                          "record says", tf.stack([height, width]),
                                                          "minimum side", min_size])
    if dtype == tf.uint8:
        output["bit_depth"] = _checked(record_depth, tf.equal(record_depth, 8),
                                       where + ["is", record_depth, "bit, decoding as 8 bit"])
    if with_defocus:
        for map_name in schema.DEFOCUS_MAPS:
            data = parsed[schema.defocus_key(map_name)]
            data = _checked(data, tf.strings.length(data) > 0, where + [f"lacks defocus map: {map_name}"])
            source = tf.strings.join(["shard ", path, " scene ", name, f" defocus map {map_name}"])
            output[map_name] = schema.decode_defocus_tensor(data, height, width, source)
    return output


def _output_keys(views: Sequence[str]) -> dict[str, str]:
    return {view: schema.VIEW_OUTPUT_KEYS[view] for view in views}


def make_train_dataset(file_patterns: FilePatterns, *, global_batch_size: int, crop_size: int = 256,
                       augment: bool = True, cache: Union[bool, str] = False, shuffle_buffer: int = 32,
                       seed: Optional[int] = None, skip_corrupt: bool = False, bit_depth: Optional[int] = None,
                       repeat: bool = True, require_views: Sequence[str] = schema.VIEWS,
                       input_context: Optional[tf.distribute.InputContext] = None, verify_records: bool = True,
                       cycle_length: int = 4,
                       augment_config: augment_lib.AugmentConfig = augment_lib.AugmentConfig()) -> tf.data.Dataset:
    """Training batches of augmented crops.

    Args:
      file_patterns: glob pattern(s) of TFRecord shards in the schema of `ifan_tf.data.schema`.
      global_batch_size: examples per batch (with `input_context`: summed over replicas; each
        pipeline then yields `input_context.get_per_replica_batch_size(global_batch_size)`).
      crop_size: side of the square crops; every image must be at least this large.
      augment: apply the spec's noise / grayscale / rescale augmentation (else plain random crops).
      cache: True caches decoded images in memory as integer pixels (uint8 for 8-bit data: about
        `4 * H * W * 3` bytes per scene); a string caches to that file prefix instead.
      shuffle_buffer: examples in the shuffle buffer (serialized records without cache, decoded
        images with cache: those share the cache's memory).
      seed: None for a nondeterministic pipeline; an int makes the whole stream reproducible.
      skip_corrupt: skip (and log and count) corrupt records instead of raising.
      bit_depth: None to accept any bit depth (decoding at the data's own), or 8 / 16 to require it.
      repeat: repeat forever (False: one epoch, last partial batch dropped).
      require_views: views every example must have; output keys are `image` (c), `left` (l),
        `right` (r), `target`.
      input_context: a `tf.distribute.InputContext` for per-worker input pipelines: shards are
        split between pipelines (records if there are fewer shards than pipelines).
      verify_records: check all shards before reading (see module docstring); False skips the
        check (read errors then cannot be skipped, and may not name the shard).
      cycle_length: shards read at once.
      augment_config: probabilities and ranges (the spec's by default).
    Returns:
      Dataset of dicts, each value `[B, crop_size, crop_size, 3] float32 in [0, 1]`, B the
      (per-replica) batch size.
    """
    require_views = tuple(view for view in schema.VIEWS if view in require_views)
    if not require_views:
        raise ValueError("require_views must name at least one of " + str(schema.VIEWS))
    files = resolve_files(file_patterns)
    batch_size = global_batch_size
    pipeline_id, num_pipelines = 0, 1
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
        pipeline_id, num_pipelines = input_context.input_pipeline_id, input_context.num_input_pipelines
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines
    if shard_files:
        files = files[pipeline_id::num_pipelines]
    if batch_size < 1:
        raise ValueError(f"batch size must be positive, got {batch_size}")

    sources = inspect_sources(files, require_views, skip_corrupt, verify_records, bit_depth,
                              body_views=require_views, check_defocus=False)  # training reads no defocus map
    if sources.min_size is not None and min(sources.min_size) < crop_size:
        raise ValueError(f"crop_size {crop_size} is larger than the smallest image {sources.min_size} in {files}")
    dtype = decode_dtype(bit_depth, sources)
    deterministic = seed is not None
    base_seed = seed if seed is not None else random.SystemRandom().randrange(2 ** 31)
    base_seed = (base_seed * 1_000_003 + pipeline_id) % (2 ** 31)
    keys = _output_keys(require_views)

    records = read_records(sources, shuffle_seed=base_seed, shuffle_files=not cache, repeat=repeat and not cache,
                           cycle_length=cycle_length, deterministic=deterministic)
    if num_pipelines > 1 and not shard_files:
        records = records.shard(num_pipelines, pipeline_id)

    def decode(path, serialized):
        decoded = decode_record(path, serialized, require_views, dtype, min_size=crop_size)
        return {view: decoded[view] for view in require_views}

    def augment_example(index, views):
        seed_pair = tf.stack([tf.constant(base_seed, tf.int64), index])
        crops = augment_lib.augment_views(views, seed_pair, crop_size, augment, augment_config)
        return {keys[view]: crops[view] for view in require_views}

    if cache:
        examples = records.map(decode, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        examples = examples.cache(cache if isinstance(cache, str) else "")
        if repeat:
            examples = examples.repeat()
        examples = examples.shuffle(shuffle_buffer, seed=base_seed, reshuffle_each_iteration=True)
        examples = examples.enumerate().map(augment_example, num_parallel_calls=AUTOTUNE,
                                            deterministic=deterministic)
    else:
        records = records.shuffle(shuffle_buffer, seed=base_seed, reshuffle_each_iteration=True)
        examples = records.enumerate().map(lambda index, item: augment_example(index, decode(*item)),
                                           num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    dataset = examples.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    logging.info("Training input: %d shards, batch %d, crop %d, %s, cache=%s, seed=%s, %d records skipped",
                 len(sources.files), batch_size, crop_size, dtype.name, cache, seed, sources.skipped_records)
    return dataset.with_options(options)


def make_eval_dataset(file_patterns: FilePatterns, *, views: Optional[Sequence[str]] = None,
                      bit_depth: Optional[int] = None, skip_corrupt: bool = False, include_defocus: bool = False,
                      batch: bool = False, verify_records: bool = True) -> tf.data.Dataset:
    """Whole images for evaluation or prediction, in shard and record order.

    Args:
      file_patterns: glob pattern(s) of shards.
      views: views to yield; None yields those present in every record (needs `verify_records`).
      bit_depth: None (any) or 8 / 16 to require it.
      skip_corrupt: skip (and log and count) corrupt records instead of raising.
      include_defocus: also yield the synthetic ground truth `coc` and `disparity`
        (`[H, W] float32`, see `schema`); every record must have them.
      batch: add a leading batch dimension of 1.
      verify_records: check all shards before reading.
    Returns:
      Dataset of dicts: `name` (string scalar), `bit_depth` (int32 scalar), and for each view its
      output key (`image`, `left`, `right`, `target`) -> `[H, W, 3] float32 in [0, 1]`.
    """
    files = resolve_files(file_patterns)
    wanted = tuple(view for view in schema.VIEWS if views is None or view in views)
    if views is not None and (set(views) - set(schema.VIEWS) or not wanted):
        raise ValueError(f"views must be a non-empty subset of {schema.VIEWS}, got {views!r}")
    sources = inspect_sources(files, wanted if views is not None else (), skip_corrupt, verify_records, bit_depth,
                              body_views=wanted if views is not None else None, check_defocus=include_defocus)
    if include_defocus and sources.lacking_defocus:
        raise ValueError("include_defocus=True, but these shards hold records without defocus maps "
                         "(only synthetic data has them): " + ", ".join(sources.lacking_defocus))
    if views is None:
        if sources.views is None:
            raise ValueError("views=None needs verify_records=True (the views present are found by inspection)")
        wanted = tuple(view for view in schema.VIEWS if view in sources.views)
        if not wanted:
            raise ValueError(f"the records of {files} have no view in common")
    dtype = decode_dtype(bit_depth, sources)
    keys = _output_keys(wanted)
    records = read_records(sources, shuffle_seed=None, shuffle_files=False, repeat=False, cycle_length=1,
                           deterministic=True)

    def decode(path, serialized):
        decoded = decode_record(path, serialized, wanted, dtype, with_defocus=include_defocus)
        output = {"name": decoded["name"], "bit_depth": decoded["bit_depth"]}
        output.update({keys[view]: schema.to_float(decoded[view]) for view in wanted})
        if include_defocus:
            output.update({map_name: decoded[map_name] for map_name in schema.DEFOCUS_MAPS})
        return output

    dataset = records.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    if batch:
        dataset = dataset.batch(1)
    return dataset.prefetch(AUTOTUNE)
