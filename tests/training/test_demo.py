"""``main.py --mode=demo`` end to end with a tiny budget: synthesize, train, validate, evaluate, report."""
import json
import types

import pytest

from tiny_training_setup import run_python

TINY_DEMO = {
    "demo.train_scenes": 4, "demo.val_scenes": 2, "demo.image_size": 64, "model.width": 8,
    "model.num_iterations": 2, "model.reblur_iterations": 2, "data.crop_size": 32, "data.shuffle_buffer": 4,
    "train.batch_size": 2, "train.num_steps": 6, "train.max_minutes": 10.0, "train.precision": "float32",
    "train.log_every": 2, "train.image_every": 3, "eval.every": 3, "eval.every_minutes": 0.0,
}


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reports_the_held_out_curve(tmp_path):
    workdir = tmp_path / "demo"
    result = run_python(["main.py", "--mode=demo", f"--workdir={workdir}", "--config=configs/ifan.py:demo",
                         *[f"--config.{key}={value}" for key, value in TINY_DEMO.items()]], timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "held-out PSNR during training" in result.stdout and "psnr" in result.stdout
    summary = json.loads((workdir / "demo_summary.json").read_text())
    assert summary["step"] == 6 and summary["stop_reason"] == "num_steps"
    assert [record["step"] for record in summary["curve"]] == [3, 6]
    assert summary["final"]["count"] == 2 and summary["final"]["input"]["psnr"] > 0
    generated = json.loads((workdir / "data" / "dataset_summary.json").read_text())["generator"]["photos"]
    assert set(generated["train"]).isdisjoint(generated["val"])  # held-out photographs
    assert (workdir / "train" / "model" / "network.npz").is_file()
    assert (workdir / "eval" / "per_image.csv").is_file()
    comparison, curve = workdir / "demo_comparison.png", workdir / "demo_psnr_curve.png"
    assert summary["figures"] == {"comparison": str(comparison), "curve": str(curve)}
    assert f"before/after on held-out scenes: {comparison}" in result.stdout and str(curve) in result.stdout
    from ifan_tf.io import image_io
    pixels, _ = image_io.read_image(comparison)
    assert pixels.shape[1] == 3 * 64 + 2 * 4 and pixels.shape[0] > 2 * 64  # 2 held-out scenes, 3 columns
    assert image_io.read_image(curve)[0].std() > 0.01


def _tiny_demo_flags(workdir):
    from configs import ifan as ifan_configs

    config = ifan_configs.get_config("demo")
    for dotted, value in dict(TINY_DEMO, **{"train.num_steps": 1, "eval.every": 0, "train.image_every": 0}).items():
        section, field = dotted.split(".")
        config[section][field] = value
    return types.SimpleNamespace(config=config, workdir=str(workdir))


@pytest.mark.parametrize("user_file", ["notes.txt", "train/notes.txt"])
def test_the_demo_leaves_a_users_file_alone_and_refuses(tmp_path, user_file):
    from ifan_tf.modes import USAGE, ModeError, demo

    workdir = tmp_path / "demo"
    (workdir / "train" / "checkpoints").mkdir(parents=True)
    if user_file.startswith("train/"):
        (workdir / demo.MARKER_FILE).write_text("{}")  # an earlier demo's directory
    (workdir / user_file).write_text("my notes")
    with pytest.raises(ModeError, match=f"--workdir {workdir} .*notes.txt") as refused:
        demo.run(_tiny_demo_flags(workdir))
    assert refused.value.exit_code == USAGE
    assert (workdir / user_file).read_text() == "my notes"
    assert (workdir / "train" / "checkpoints").is_dir() and not (workdir / "data").exists()


def test_the_demo_needs_a_demo_configuration(tmp_path):
    from configs import ifan as ifan_configs
    from ifan_tf.modes import USAGE, ModeError, demo

    for flags, default in [(types.SimpleNamespace(config=None, workdir=str(tmp_path)), None),
                           (types.SimpleNamespace(config=ifan_configs.get_config(""), workdir=str(tmp_path)),
                            ifan_configs.get_config("demo"))]:  # --config wins over main.py's default
        with pytest.raises(ModeError, match="needs the demo configuration") as refused:
            demo.run(flags, default_config=default)
        assert refused.value.exit_code == USAGE
    assert not any(tmp_path.iterdir())


def test_the_demo_replaces_only_its_own_work_directory(tmp_path):
    from ifan_tf.modes import demo

    assert demo.check_demo_workdir(str(tmp_path / "missing")) is True
    assert demo.check_demo_workdir(str(tmp_path)) is True  # empty
    for path in [demo.MARKER_FILE, ".lock", "demo_summary.json", "demo_comparison.png", "demo_psnr_curve.png",
                 ".demo_psnr_curve.png.123.ab12cd34.tmp", "data/train-00000-of-00001.tfrecord",
                 "eval/summary.json", "train/config.json", "train/.lock", "train/metrics.jsonl",
                 "train/checkpoints/checkpoint", "train/model/config.json", "train/.model.tmp-ab12/x"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert demo.check_demo_workdir(str(tmp_path)) is False  # an earlier demo's: may be replaced
