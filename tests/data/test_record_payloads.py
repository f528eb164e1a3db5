"""Records with intact framing but a damaged PNG body or defocus map: skipped and counted, or named."""
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.data import integrity, pipeline, schema, shard_inspection
from ifan_tf.io import image_io
from scene_builders import random_scene, write_records

CROP = 16


def scenes_as_records(count, with_defocus=False):
    rng = np.random.default_rng(7)
    return [schema.scene_to_record(random_scene(rng, f"scene_{i}", 24, 24, with_defocus=with_defocus))
            for i in range(count)]


def idat_span(png):
    """(start, length) of the first IDAT chunk's body."""
    start = png.find(b"IDAT") + 4
    return start, struct.unpack(">I", png[start - 8:start - 4])[0]


def with_idat_body(png, body):
    """``png`` with its (single) IDAT chunk body replaced and the chunk's CRC made valid again."""
    start, length = idat_span(png)
    chunk = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return png[:start - 8] + chunk + png[start + length + 4:]


def flip_in_idat(png):
    start, length = idat_span(png)
    data = bytearray(png)
    data[start + length // 2] ^= 0x55
    return bytes(data)


def bad_deflate_valid_crc(png):
    start, length = idat_span(png)
    body = bytearray(png[start:start + length])
    body[len(body) // 2] ^= 0x55
    return with_idat_body(png, bytes(body))


def bad_filter_byte(png):
    start, length = idat_span(png)
    raw = bytearray(zlib.decompress(png[start:start + length]))
    raw[(1 + 24 * 3) * 5] = 9  # the filter byte of row 5 of a 24-pixel-wide RGB 8-bit image
    return with_idat_body(png, zlib.compress(bytes(raw)))


def short_image_data(png):
    start, length = idat_span(png)
    raw = zlib.decompress(png[start:start + length])
    return with_idat_body(png, zlib.compress(raw[: len(raw) // 2]))


def replace_feature(record, key, value):
    example = tf.train.Example.FromString(record)
    example.features.feature[key].bytes_list.value[0] = value
    return example.SerializeToString()


@pytest.mark.parametrize("damage, reason", [
    (flip_in_idat, "view l: PNG chunk b'IDAT' at byte 33 is corrupt (CRC mismatch)"),
    (bad_deflate_valid_crc, "view l: PNG image data is not valid zlib data"),
    (bad_filter_byte, "view l: PNG image data is corrupt (row 5 has filter type 9)"),
    (short_image_data, "view l: PNG image data inflates to 876 bytes, expected 1752"),
], ids=["bit_flip", "bad_deflate_with_valid_crc", "bad_filter_byte", "short_image_data"])
def test_record_with_a_damaged_png_body_is_named_or_skipped_and_counted(tmp_path, damage, reason):
    records = scenes_as_records(4)
    png = tf.train.Example.FromString(records[1]).features.feature["image/l"].bytes_list.value[0]
    damaged = damage(png)
    assert damaged.endswith(b"IEND\xaeB`\x82") and image_io.png_header(damaged).width == 24  # looks fine outside
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_png(damaged)  # ... but TensorFlow cannot decode it (and would not say which record)
    records[1] = replace_feature(records[1], "image/l", damaged)
    path = write_records(tmp_path / "body-00000-of-00001.tfrecord", records)

    with pytest.raises(shard_inspection.CorruptShardError) as error:
        pipeline.make_eval_dataset(path)
    message = str(error.value)
    assert f"{path} record 1 (scene 'scene_1')" in message and reason in message, message

    dataset = pipeline.make_eval_dataset(path, skip_corrupt=True)
    assert [e["name"].decode() for e in dataset.as_numpy_iterator()] == ["scene_0", "scene_2", "scene_3"]
    assert pipeline.inspect_sources([path], skip_corrupt=True).skipped_records == 1
    train = pipeline.make_train_dataset(path, global_batch_size=3, crop_size=CROP, skip_corrupt=True, repeat=False,
                                        seed=0)
    assert [batch["image"].shape[0] for batch in train] == [3]


def defocus_bomb(height, width, factor=64):
    """zlib data inflating to ``factor`` times the size of an ``height x width`` float32 map."""
    return zlib.compress(bytes(4 * height * width * factor), 9)


@pytest.mark.parametrize("payload, reason", [
    (b"\x78\x9c" + b"\x00" * 40, "defocus map coc is not valid zlib data"),
    (zlib.compress(bytes(4 * 24 * 24 - 4)), "defocus map coc inflates to 2300 bytes, expected 2304"),
    (zlib.compress(bytes(4 * 24 * 24))[:-6], "(the zlib stream is truncated)"),
    (defocus_bomb(24, 24), "defocus map coc inflates to more than the 2304 bytes expected"),
], ids=["not_zlib", "short", "truncated", "bomb"])
def test_record_with_a_damaged_defocus_map_is_named_or_skipped_and_counted(tmp_path, payload, reason):
    records = scenes_as_records(3, with_defocus=True)
    records[2] = replace_feature(records[2], "defocus/coc", payload)
    path = write_records(tmp_path / "maps-00000-of-00001.tfrecord", records)
    with pytest.raises(shard_inspection.CorruptShardError) as error:
        pipeline.make_eval_dataset(path, include_defocus=True)
    message = str(error.value)
    assert f"{path} record 2 (scene 'scene_2')" in message and reason in message, message
    dataset = pipeline.make_eval_dataset(path, include_defocus=True, skip_corrupt=True)
    assert [e["name"].decode() for e in dataset.as_numpy_iterator()] == ["scene_0", "scene_1"]


def test_defocus_bomb_is_refused_without_inflating_it():
    bomb = zlib.compress(bytes(256 << 20), 9)  # ~250 KB inflating to 256 MiB, in a record of 100 x 100
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="rec: defocus map inflates to more than the 40000 bytes expected"):
            schema.decode_defocus_map(bomb, 100, 100, "rec")
        with pytest.raises(ValueError, match="more than the 40000 bytes expected"):
            integrity.check_inflated_size(bomb, 40000, "rec", "defocus map")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_unverified_reading_names_the_shard_and_scene_of_a_defocus_bomb(tmp_path):
    records = scenes_as_records(2, with_defocus=True)
    records[1] = replace_feature(records[1], "defocus/disparity", defocus_bomb(24, 24, factor=1000))
    path = write_records(tmp_path / "raw-00000-of-00001.tfrecord", records)
    dataset = pipeline.make_eval_dataset(path, include_defocus=True, views=["c"], verify_records=False)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(dataset.as_numpy_iterator())
    message = str(error.value)
    assert "raw-00000-of-00001.tfrecord" in message and "scene_1" in message, message
    assert "defocus map inflates to more than the 2304 bytes expected" in message, message


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_intact_pngs_pass_the_body_check(bit_depth):
    rng = np.random.default_rng(bit_depth)
    for height, width in [(1, 1), (7, 5), (24, 40)]:
        pixels = rng.integers(0, 2 ** bit_depth, (height, width, 3)).astype(np.uint8 if bit_depth == 8 else np.uint16)
        integrity.check_png_body(image_io.encode_png(pixels), "ok")


def test_png_body_check_reads_in_chunks(monkeypatch):
    png = image_io.encode_png(np.random.default_rng(0).integers(0, 256, (40, 24, 3)).astype(np.uint8))
    monkeypatch.setattr(integrity, "_CHUNK_BYTES", 7)
    monkeypatch.setattr(integrity.inflated_chunks, "__defaults__", (7,))
    integrity.check_png_body(png, "ok")
    with pytest.raises(ValueError, match="row 5 has filter type 9"):
        integrity.check_png_body(bad_filter_byte(png), "bad")


def test_png_with_data_after_its_end_is_refused():
    png = image_io.encode_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="x: PNG chunk at byte 57 is truncated"):
        integrity.check_png_body(png[:-1], "x")
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    with pytest.raises(ValueError, match="x: PNG has data after its IEND chunk"):
        integrity.check_png_body(png + end, "x")
