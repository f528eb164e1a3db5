"""Bad input images (corrupt body, declared size above the decoding limit, unsupported depth,
views of differing sizes) are all found by the converters' inspection pass, before any shard is
written; `skip_bad_images` (`--skip_bad_images`) converts the other scenes and lists them."""
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
import tensorflow as tf

from data_prep import conversion, dpdd, folders, scene_files
from ifan_tf.data import dataset_writer
from ifan_tf.io import image_io

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CORRUPT_REASON = r"corrupt image data.*not valid zlib data"
HUGE_REASON = r"declares 50000x50000 pixels \(2500 Mpx\), more than the \d+ Mpx"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def write_corrupt_body_png(path, height=24, width=32):
    """A PNG with a valid signature, IHDR and chunk CRCs whose IDAT holds garbage instead of zlib data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    garbage = np.random.default_rng(7).integers(0, 256, 600, dtype=np.uint8).tobytes()
    garbage = b"\x00\xff" + garbage  # 0x00ff is not a zlib header, whatever the random bytes are
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(image_io.PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", garbage)
                     + png_chunk(b"IEND", b""))


def write_huge_png(path):
    """A 100-byte PNG whose IHDR declares 50000x50000 RGB pixels (never allocated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    path.write_bytes(image_io.PNG_SIGNATURE + png_chunk(b"IHDR", ihdr)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def write_good(path, seed, shape=(24, 32, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image_io.write_image(path, np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), 8)


def record_names(output_dir, split):
    names = []
    for path in sorted(output_dir.glob(f"{split}-*.tfrecord")):
        names += [tf.train.Example.FromString(record.numpy()).features.feature["name"].bytes_list.value[0].decode()
                  for record in tf.data.TFRecordDataset(str(path))]
    return names


def make_defocused_folder(root):
    """a, c, e good; b has a corrupt body; d declares 50000x50000 (sorted so good scenes come first)."""
    for seed, name in enumerate(("a", "c", "e")):
        write_good(root / f"{name}.png", seed)
    write_corrupt_body_png(root / "b.png")
    write_huge_png(root / "d.png")


def assert_nothing_written(out):
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_folder_with_bad_images_is_refused_before_any_shard(tmp_path):
    make_defocused_folder(tmp_path / "in")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:  # the command line's path: error message, exit status 1
        conversion.run_cli(lambda: folders.convert_folder(
            "defocused", tmp_path / "in", out, examples_per_shard=1, num_workers=2, show_progress=False), out)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "2 problem(s) found, nothing was written" in message
    lines = message.splitlines()
    corrupt = [line for line in lines if str(tmp_path / "in" / "b.png") in line]
    huge = [line for line in lines if str(tmp_path / "in" / "d.png") in line]
    assert len(corrupt) == 1 and len(huge) == 1, message
    assert re.search(CORRUPT_REASON, corrupt[0]), corrupt[0]
    assert re.search(HUGE_REASON, huge[0]), huge[0]
    assert "--skip_bad_images" in message
    assert_nothing_written(out)


def test_folder_skip_bad_images_converts_the_rest_and_lists_them(tmp_path, capsys):
    make_defocused_folder(tmp_path / "in")
    out = tmp_path / "out"
    conversion.run_cli(lambda: folders.convert_folder(
        "defocused", tmp_path / "in", out, examples_per_shard=2, num_workers=2, show_progress=False,
        skip_bad_images=True), out)
    assert record_names(out, "test") == ["a", "c", "e"]
    summary = json.loads((out / dataset_writer.SUMMARY_FILE).read_text())
    assert summary["splits"]["test"]["num_examples"] == 3 and summary["splits"]["test"]["scenes"] == ["a", "c", "e"]
    skipped = {entry["scene"]: entry for entry in summary["skipped_bad_images"]}
    assert sorted(skipped) == ["b", "d"]
    assert skipped["b"]["files"] == ["b.png"] and skipped["b"]["split"] == "test"
    assert re.search(CORRUPT_REASON, skipped["b"]["reason"])
    assert skipped["d"]["files"] == ["d.png"] and re.search(HUGE_REASON, skipped["d"]["reason"])
    printed = capsys.readouterr().out
    assert "test: 3 scenes" in printed and "2 scene(s) with bad images were skipped" in printed
    source = (tmp_path / "in").resolve()
    assert re.search(rf"test/b: {re.escape(str(source / 'b.png'))}: {CORRUPT_REASON}", printed), printed
    assert re.search(rf"test/d: {re.escape(str(source / 'd.png'))}: the image {HUGE_REASON}", printed), printed
    assert not list(out.glob(".*"))


def test_bad_images_beyond_the_listed_ones_are_logged(tmp_path, monkeypatch, caplog):
    make_defocused_folder(tmp_path / "in")
    monkeypatch.setattr(scene_files, "MAX_LISTED_PROBLEMS", 1)
    with pytest.raises(scene_files.DatasetLayoutError, match=r"\.\.\. and 1 more \(logged above\)") as error:
        folders.convert_folder("defocused", tmp_path / "in", tmp_path / "out", show_progress=False)
    assert "b.png: corrupt image data" in str(error.value) and "d.png" not in str(error.value)
    assert re.search(rf"d\.png: the image {HUGE_REASON}", caplog.text), caplog.text


def test_every_kind_of_bad_image_is_reported_at_once(tmp_path):
    """realdof pairs: good, corrupt source, views of differing sizes, 32-bit float target, empty file."""
    root = tmp_path / "realdof"
    for name in ("good", "corrupt", "sizes", "float", "empty"):
        write_good(root / "source" / f"{name}.png", 1)
    write_good(root / "target" / "good.png", 2)
    write_good(root / "target" / "corrupt.png", 3)
    write_corrupt_body_png(root / "source" / "corrupt.png")
    write_good(root / "target" / "sizes.png", 4, (24, 30, 3))
    assert cv2.imwrite(str(root / "target" / "float.tif"), np.zeros((24, 32, 3), np.float32))
    (root / "target" / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(scene_files.DatasetLayoutError, match="4 problem") as error:
        folders.convert_folder("realdof", root, out, num_workers=2, show_progress=False)
    message = str(error.value)
    for expected in (r"corrupt\.png: corrupt image data", r"scene 'sizes' views differ in size: .*sizes\.png 30x24",
                     r"float\.tif: .*unsupported sample type float32",
                     r"empty\.png: cannot decode image data.*\(0 bytes"):
        assert re.search(expected, message), (expected, message)
    assert "good.png" not in message
    assert_nothing_written(out)

    summary = folders.convert_folder("realdof", root, out, num_workers=2, show_progress=False, skip_bad_images=True)
    assert record_names(out, "test") == ["good"]
    assert sorted(entry["scene"] for entry in summary["skipped_bad_images"]) == ["corrupt", "empty", "float", "sizes"]
    sizes = next(entry for entry in summary["skipped_bad_images"] if entry["scene"] == "sizes")
    assert sizes["files"] == ["source/sizes.png", "target/sizes.png"]


def test_skipping_does_not_hide_layout_problems_or_leave_nothing_to_convert(tmp_path):
    root = tmp_path / "in"
    write_corrupt_body_png(root / "bad.png")
    with pytest.raises(scene_files.DatasetLayoutError, match="no scenes left to convert") as error:
        folders.convert_folder("defocused", root, tmp_path / "out", show_progress=False, skip_bad_images=True)
    assert "bad.png: corrupt image data" in str(error.value)
    assert_nothing_written(tmp_path / "out")

    write_good(root / "source" / "a.png", 0)  # realdof: a has no target, b is corrupt
    write_corrupt_body_png(root / "source" / "b.png")
    write_good(root / "target" / "b.png", 1)
    with pytest.raises(scene_files.DatasetLayoutError, match="scene 'a' has no file for target") as error:
        folders.convert_folder("realdof", root, tmp_path / "out", show_progress=False, skip_bad_images=True)
    assert "b.png: corrupt image data" in str(error.value)
    assert_nothing_written(tmp_path / "out")


def test_declared_size_is_refused_before_the_body_is_read(tmp_path, monkeypatch):
    write_huge_png(tmp_path / "huge.png")
    monkeypatch.setattr(image_io, "read_pixels", lambda path: pytest.fail(f"{path} was read"))
    with pytest.raises(image_io.ImageTooLargeError, match=HUGE_REASON) as error:
        image_io.verify_image_file(tmp_path / "huge.png")
    assert (error.value.width, error.value.height) == (50000, 50000)


def test_a_split_name_the_writer_refuses_is_refused_before_writing(tmp_path):
    write_good(tmp_path / "in" / "a.png", 0)
    with pytest.raises(scene_files.DatasetLayoutError, match="split name must be non-empty without '/' or '-'"):
        folders.convert_folder("defocused", tmp_path / "in", tmp_path / "out", split="my-test", show_progress=False)
    assert_nothing_written(tmp_path / "out")


def test_inspection_shows_progress(tmp_path, capsys):
    make_defocused_folder(tmp_path / "in")
    folders.convert_folder("defocused", tmp_path / "in", tmp_path / "out", num_workers=1, skip_bad_images=True)
    assert "inspecting" in capsys.readouterr().err


def break_dpdd(root):
    write_corrupt_body_png(root / "train_l/source/1P0A0001_L.png")
    write_huge_png(root / "test_c/target/1P0A0000.png")


def test_dpdd_bad_images_refused_then_skipped(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree(splits=(("train", 3), ("val", 1), ("test", 2)))
    break_dpdd(root)
    write_huge_png(root / "val_r/source/1P0A0000_R.png")  # val's only scene
    out = tmp_path / "records"
    with pytest.raises(scene_files.DatasetLayoutError, match="3 problem") as error:
        dpdd.convert_dpdd(root, out, num_workers=2, examples_per_shard=1, show_progress=False)
    message = str(error.value)
    assert re.search(r"train: .*train_l/source/1P0A0001_L\.png: " + CORRUPT_REASON, message), message
    assert re.search(r"test: .*test_c/target/1P0A0000\.png: .*" + HUGE_REASON, message), message
    assert_nothing_written(out)

    summary = dpdd.convert_dpdd(root, out, num_workers=2, examples_per_shard=1, show_progress=False,
                                skip_bad_images=True)
    assert record_names(out, "train") == ["1P0A0000", "1P0A0002"] and record_names(out, "test") == ["1P0A0001"]
    assert summary["splits"]["train"]["num_examples"] == 2 and summary["splits"]["test"]["num_examples"] == 1
    assert summary == dataset_writer.load_summary(out)
    assert [(e["split"], e["scene"], e["files"]) for e in summary["skipped_bad_images"]] == [
        ("train", "1P0A0001", ["train_l/source/1P0A0001_L.png"]), ("val", "1P0A0000", ["val_r/source/1P0A0000_R.png"]),
        ("test", "1P0A0000", ["test_c/target/1P0A0000.png"])]
    assert sorted(summary["splits"]) == ["test", "train"] and not list(out.glob("val-*"))  # no empty split


@pytest.mark.slow
def test_commands_exit_with_the_error_or_skip_with_the_flag(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree(splits=(("train", 3), ("test", 2)))
    break_dpdd(root)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "data_prep.dpdd", f"--input_dir={root}", *args], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=300)

    refused = run(f"--output_dir={tmp_path / 'refused'}")
    assert refused.returncode == 1 and "error: " in refused.stderr and "Traceback" not in refused.stderr
    assert "1P0A0001_L.png: corrupt image data" in refused.stderr and "declares 50000x50000" in refused.stderr
    assert not (tmp_path / "refused").exists()

    skipped = run(f"--output_dir={tmp_path / 'skipped'}", "--skip_bad_images")
    assert skipped.returncode == 0, skipped.stderr
    assert "train: 2 scenes" in skipped.stdout and "2 scene(s) with bad images were skipped" in skipped.stdout
