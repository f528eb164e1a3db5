"""``main.py --mode=demo`` end to end with a tiny budget: synthesize, train, validate, evaluate, report."""
import json

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
