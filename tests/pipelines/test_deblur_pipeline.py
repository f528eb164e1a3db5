"""The Beam deblurring pipeline: predict's outputs, dead letters, resumption, atomic idempotent writes, runner."""
import os

import numpy as np
import pytest

from ifan_tf.io import image_io
from ifan_tf.modes import run_mode
from ifan_tf.pipelines import deblur, deblur_model, deblur_steps, runner

from pipeline_test_images import CORRUPT, GOOD_IMAGES, HUGE, MAX_PIXELS, TILE, TILE_OVERLAP, make_photo_folder
from prediction_helpers import predict_flags, smooth_pixels

TWO_PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def run_predict(source, target, model_dir, **flags):
    status = run_mode("predict", predict_flags(source, target, model_dir=model_dir, **flags))
    assert status in (0, 1)
    return status


def assert_same_outputs(folder, reference, names):
    for name in names:
        produced, expected = folder / name, reference / name
        assert produced.is_file(), f"{produced} was not written"
        assert produced.read_bytes() == expected.read_bytes(), f"{name}: differs from predict's output"


def identities(folder, names):
    return {name: (os.stat(folder / name).st_ino, os.stat(folder / name).st_mtime_ns) for name in names}


@pytest.mark.slow
def test_two_worker_processes_give_predicts_files_dead_letters_and_resume(tiny_model, photo_folder, tmp_path, capsys):
    reference = tmp_path / "predict"
    # The SavedModel's tile plan is its export's: predict with the same --tile and --tile_overlap.
    run_predict(photo_folder, reference, tiny_model.model_dir, tile=TILE, tile_overlap=TILE_OVERLAP)
    output = tmp_path / "beam"
    status = deblur.run(["--input", str(photo_folder), "--output", str(output), "--model", tiny_model.export_dir]
                        + TWO_PROCESSES)
    captured = capsys.readouterr()
    assert status == 1, captured
    names = sorted(GOOD_IMAGES)
    assert_same_outputs(output, reference, names)
    assert not (output / CORRUPT).exists() and not (output / HUGE).exists()
    assert not list(output.rglob(".*")), "temporary or hidden files were left behind"
    letters = {record["path"]: record for record in deblur_steps.read_dead_letters(str(output / "dead_letter.jsonl"))}
    assert set(letters) == {str(photo_folder / CORRUPT), str(photo_folder / HUGE)}
    assert "truncated" in letters[str(photo_folder / CORRUPT)]["reason"] or \
        "cannot decode" in letters[str(photo_folder / CORRUPT)]["reason"]
    assert f"max_pixels={MAX_PIXELS}" in letters[str(photo_folder / HUGE)]["reason"]
    assert f"deblurred {len(names)} of {len(names) + 2} images" in captured.out
    assert f"failed: {photo_folder / HUGE}: 64x56 pixels" in captured.err

    removed, kept = names[::2], names[1::2]
    for name in removed:
        (output / name).unlink()
    before = identities(output, kept)
    status = deblur.run(["--input", str(photo_folder), "--output", str(output), "--model", tiny_model.export_dir]
                        + TWO_PROCESSES)
    captured = capsys.readouterr()
    assert status == 1
    assert_same_outputs(output, reference, names)
    assert identities(output, kept) == before, "outputs that existed were rewritten"
    assert f"deblurred {len(removed)} of {len(names) + 2} images" in captured.out
    assert f"{len(kept)} of {len(names) + 2} images skipped: output exists" in captured.out
    assert len(deblur_steps.read_dead_letters(str(output / "dead_letter.jsonl"))) == 2


def test_model_directory_gives_predicts_files_with_predicts_defaults(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    for name, shape, dtype in (("x.png", (30, 44, 3), np.uint8), ("y16.png", (40, 24, 3), np.uint16),
                               ("z.jpg", (33, 47, 3), np.uint8), ("w.png", (24, 40), np.uint16)):
        folder.mkdir(exist_ok=True)
        image_io.write_pixels(folder / name, smooth_pixels(shape, dtype, len(name)))
    run_predict(folder, tmp_path / "predict", tiny_model.model_dir)
    status = deblur.run(["--input", str(folder), "--output", str(tmp_path / "beam"), "--model", tiny_model.model_dir,
                         "--memory_budget_gb=2"])
    assert status == 0, capsys.readouterr()
    assert_same_outputs(tmp_path / "beam", tmp_path / "predict", ["x.png", "y16.png", "z.jpg", "w.png"])
    assert (tmp_path / "beam" / "dead_letter.jsonl").read_text() == ""


def test_an_inference_error_goes_to_the_dead_letters(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image_io.write_pixels(folder / "fine.png", smooth_pixels((24, 32, 3), np.uint8, 1))
    image_io.write_pixels(folder / "large.png", smooth_pixels((56, 64, 3), np.uint8, 2))
    spec = deblur_model.describe_model(tiny_model.export_dir)
    spec = deblur_model.ModelSpec(**{**spec.__dict__, "max_pixels": None})  # let the graph itself refuse it
    plan = deblur_steps.OutputPlan(str(folder), str(tmp_path / "out"))
    dead_letter = str(tmp_path / "failed.jsonl")
    pipeline = runner.new_pipeline(runner.make_options([]))
    deblur.build(pipeline, plan, spec, dead_letter=dead_letter)
    runner.run_to_completion(pipeline)
    (record,) = deblur_steps.read_dead_letters(dead_letter)
    assert record["path"] == str(folder / "large.png") and record["stage"] == "inference"
    assert "max_pixels" in record["reason"]
    assert (tmp_path / "out" / "fine.png").is_file() and not (tmp_path / "out" / "large.png").exists()


def test_the_default_runner_is_pure_python_and_never_prism(monkeypatch, tmp_path):
    from apache_beam.runners.portability import prism_runner
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    import apache_beam as beam

    def refuse(*args, **kwargs):
        raise AssertionError("the Prism runner (which downloads a binary) was used")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    pipeline = runner.new_pipeline(runner.make_options([]))
    assert isinstance(pipeline.runner, fn_runner.FnApiRunner)
    _ = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2) | beam.io.WriteToText(
        str(tmp_path / "numbers"), shard_name_template="")
    runner.run_to_completion(pipeline)
    assert sorted((tmp_path / "numbers").read_text().split()) == ["2", "4", "6"]
    options = runner.make_options(["--direct_num_workers=2"])
    assert options.get_all_options()["direct_running_mode"] == "multi_processing"
    assert "multi_processing, 2 worker(s)" in runner.describe(options)
    assert runner.describe(runner.make_options(["--runner=DataflowRunner"])) == "DataflowRunner"


def test_output_plan_mirrors_predicts_names(tmp_path):
    folder = make_photo_folder(tmp_path / "photos")
    plan = deblur_steps.OutputPlan(str(folder), str(tmp_path / "out"))
    assert plan.pattern == f"{folder}/**"
    assert plan.target_for(str(folder / "sub" / "g.png")) == str(tmp_path / "out" / "sub" / "g.png")
    for not_input in (".hidden.png", "notes.txt", "sub/.h/x.png"):
        assert plan.target_for(str(folder / not_input)) is None
    inside = deblur_steps.OutputPlan(str(folder), str(folder / "deblurred"))
    assert inside.target_for(str(folder / "deblurred" / "a.png")) is None  # earlier outputs are not inputs
    with pytest.raises(ValueError, match="output folder is the input folder"):
        deblur_steps.OutputPlan(str(folder), str(folder) + "/").check()
    pattern = deblur_steps.OutputPlan("gs://bucket/photos/**/*.jpg", "gs://bucket/out/")
    assert pattern.base == "gs://bucket/photos" and pattern.pattern == "gs://bucket/photos/**/*.jpg"
    assert pattern.target_for("gs://bucket/photos/2024/a.jpg") == "gs://bucket/out/2024/a.jpg"
    single = deblur_steps.OutputPlan(str(folder / "a.png"), str(tmp_path / "one"))
    assert single.target_for(str(folder / "a.png")) == str(tmp_path / "one" / "a.png")


def test_writes_are_atomic_and_idempotent_and_failures_named(tmp_path):
    from apache_beam.ml.inference.base import PredictionResult

    target = tmp_path / "out" / "x16.png"
    key = deblur_steps.ImageKey(str(tmp_path / "x16.png"), str(target), 16, False, None)
    deblurred = np.random.default_rng(0).uniform(0, 1, (24, 32, 3)).astype(np.float32)
    step = deblur_steps.WriteImage()
    assert list(step.process((key, PredictionResult(None, deblurred)))) == []
    first = target.read_bytes()
    assert list(step.process((key, PredictionResult(None, deblurred)))) == []  # a retried bundle
    assert target.read_bytes() == first
    pixels, depth = image_io.read_pixels(target)
    expected = image_io.to_pixels(deblurred.copy(), image_io.DecodedImage(rgb=None, bit_depth=16))  # predict's quantisation
    assert depth == 16 and np.array_equal(pixels, expected)
    assert sorted(path.name for path in target.parent.iterdir()) == ["x16.png"]
    (tmp_path / "blocked").write_text("a file where a folder should be")
    blocked = key._replace(target=str(tmp_path / "blocked" / "y.png"))
    (failure,) = list(step.process((blocked, PredictionResult(None, deblurred))))
    assert failure.value["path"] == key.source and failure.value["stage"] == "write" and failure.value["reason"]


def test_bad_command_lines_stop_before_starting(tiny_model, photo_folder, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert deblur.run(["--input", str(photo_folder), "--output", out, "--model", str(tmp_path / "none")]) == 2
    assert "no such model" in capsys.readouterr().err
    assert deblur.run(["--input", str(photo_folder), "--output", out, "--model", tiny_model.export_dir,
                       "--tile=64"]) == 2
    assert "fixed at export" in capsys.readouterr().err
    assert deblur.run(["--input", str(tmp_path / "missing"), "--output", out, "--model", tiny_model.export_dir]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert deblur.run(["--input", str(photo_folder), "--output", str(photo_folder), "--model",
                       tiny_model.export_dir]) == 2
    assert "refusing to overwrite the inputs" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_batches_stack_only_images_of_equal_shape_within_max_batch():
    import types

    calls = []

    class Recorder:
        spec = types.SimpleNamespace(max_batch=2)

        def deblur_batch(self, images):
            calls.append(images.shape)
            return images * 0.5

    shapes = [(8, 16, 3), (16, 8, 3), (8, 16, 3), (8, 16, 3), (16, 8, 3)]
    batch = [np.full(shape, index + 1, np.float32) for index, shape in enumerate(shapes)]
    results = deblur_model.deblur_batch(Recorder(), batch, {}, "m")
    assert sorted(calls) == [(1, 8, 16, 3), (2, 8, 16, 3), (2, 16, 8, 3)]
    for index, result in enumerate(results):
        assert result.inference.shape == shapes[index] and np.all(result.inference == (index + 1) * 0.5)
