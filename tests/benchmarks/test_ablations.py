"""The ablation study runner (``python -m benchmarks.ablations``): table, resume, skipping finished runs."""
import json

import pytest

from benchmarks import ablations

TINY = ["model.width=8", "model.num_iterations=2", "model.reblur_iterations=2", "data.crop_size=32",
        "data.shuffle_buffer=4", "train.batch_size=2", "train.precision=float32", "train.log_every=1",
        "train.checkpoint_every=1000", "train.checkpoint_every_minutes=0.0", "demo.train_scenes=2",
        "demo.val_scenes=1", "demo.image_size=64"]


def fake_result(seed, psnr, steps=10, settings=None):
    return {"run": f"X-seed{seed}", "steps": steps, "stop_reason": "num_steps", "minutes": 1.0 + seed, "count": 2,
            "psnr": psnr, "ssim": 0.8 + psnr / 1000, "mae": 0.05, "input_psnr": 25.0, "input_ssim": 0.7,
            "input_mae": 0.06, "settings": settings or {}}


def test_the_table_gives_mean_and_sample_spread_over_seeds():
    results = [dict(fake_result(0, 27.0), variant="F", seed=0), dict(fake_result(1, 28.0), variant="F", seed=1),
               dict(fake_result(0, 26.0), variant="B", seed=0)]
    rows = ablations.summarize(results, ["B", "D", "F"])
    assert [row["variant"] for row in rows] == ["B", "F"]  # D has no result yet
    f = rows[1]
    assert f["psnr"]["mean"] == pytest.approx(27.5) and f["psnr"]["std"] == pytest.approx(0.70710678)
    assert (f["psnr"]["min"], f["psnr"]["max"]) == (27.0, 28.0) and f["seeds"] == [0, 1]
    assert f["minutes"]["mean"] == pytest.approx(1.5) and rows[0]["psnr"]["std"] == 0.0
    markdown = ablations.format_markdown({"command": "cmd", "table": rows, "missing": ["D-seed0"]})
    assert "| F | checkpoint | 2 | 27.50 ± 0.71 [27.00, 28.00] | +2.50 |" in markdown
    assert "| B | — | 1 | 26.00 ± 0.00" in markdown and "Not finished yet: D-seed0" in markdown


def test_a_run_is_finished_only_with_the_same_settings_and_budget_reached():
    settings = {"model": {"width": 8}}
    done = fake_result(0, 27.0, steps=10, settings=settings)
    assert ablations.is_finished(done, settings, 10, 0.0)
    assert not ablations.is_finished(done, {"model": {"width": 16}}, 10, 0.0)
    assert not ablations.is_finished(done, settings, 20, 0.0)  # more steps asked: resume
    assert ablations.is_finished(done, settings, 20, 1.0)  # but the minutes are spent
    assert not ablations.is_finished(None, settings, 10, 0.0)


def test_run_configs_differ_only_in_the_ablation_iac_mode_and_seed():
    overrides = ablations.parse_overrides(TINY)
    assert overrides["model.width"] == 8 and overrides["train.precision"] == "float32"
    released = ablations.run_config("IFAN", 0, 100, overrides)
    intended = ablations.run_config("IFAN-separable", 1, 100, overrides)
    baseline = ablations.run_config("B", 0, 100, overrides)
    assert released.model.iac_mode == "checkpoint" and intended.model.iac_mode == "separable"
    assert not baseline.model.use_iac and released.model.use_rbn and released.model.use_dme
    assert (released.train.seed, intended.train.seed) == (0, 1)
    assert released.train.lr_boundaries == (73, 91) and released.model.width == 8
    with pytest.raises(ValueError, match="unknown variant"):
        ablations.run_config("XYZ", 0, 10)
    with pytest.raises(ValueError, match="unknown config field"):
        ablations.run_config("B", 0, 10, {"model.nope": 1})


@pytest.mark.slow
def test_tiny_study_writes_the_table_and_a_rerun_skips_finished_runs(tmp_path, monkeypatch):
    from ifan_tf.training import trainer

    calls = []
    real_train = trainer.train

    def counting_train(config, workdir, *args, **kwargs):
        calls.append(workdir)
        return real_train(config, workdir, *args, **kwargs)

    monkeypatch.setattr(trainer, "train", counting_train)
    study = tmp_path / "study"
    arguments = dict(variants=["B", "F"], seeds=[0], num_steps=2, overrides=ablations.parse_overrides(TINY))
    document = ablations.run_study(str(study), **arguments)
    assert len(calls) == 2 and document["missing"] == []
    assert [row["variant"] for row in document["table"]] == ["B", "F"]
    saved = json.loads((study / "results.json").read_text())
    assert saved["table"][1]["psnr"]["mean"] > 0 and saved["table"][1]["steps"]["mean"] == 2
    markdown = (study / "results.md").read_text()
    assert "| B | — | 1 |" in markdown and "| F | checkpoint | 1 |" in markdown
    config = json.loads((study / "runs" / "F-seed0" / "train" / "config.json").read_text())
    assert config["model"]["iac_mode"] == "checkpoint" and config["data"]["val"] == ""

    ablations.run_study(str(study), **arguments)
    assert len(calls) == 2  # both finished: skipped
    (study / "runs" / "B-seed0" / "result.json").unlink()  # as if stopped before its evaluation
    ablations.run_study(str(study), **arguments)
    assert len(calls) == 3 and calls[-1].endswith("B-seed0/train")
    assert json.loads((study / "runs" / "B-seed0" / "result.json").read_text())["steps"] == 2  # resumed at the end
    report = ablations.run_study(str(study), **dict(arguments, num_steps=3), report_only=True)
    assert len(calls) == 3 and sorted(report["missing"]) == ["B-seed0", "F-seed0"]  # settings changed
