"""The ablation study runner (``python -m studies.ablations``): recipe, variants, test sets, table,
resume, run locks and parallel workers."""
import json
import os
import subprocess
import sys

import pytest

from studies import ablation_data, ablation_runs, ablation_workers, ablations

TINY = ["model.width=8", "model.num_iterations=2", "model.reblur_iterations=2", "data.crop_size=32",
        "data.shuffle_buffer=4", "train.batch_size=2", "train.precision=float32", "train.log_every=1",
        "train.checkpoint_every=1000", "train.checkpoint_every_minutes=0.0", "demo.train_scenes=2",
        "demo.val_scenes=1", "demo.image_size=64"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scores(psnr, count=2, spec=None, input_psnr=25.0):
    return {"spec": spec or {}, "count": count, "psnr": psnr, "ssim": 0.8 + psnr / 1000, "mae": 0.05,
            "input_psnr": input_psnr, "input_ssim": 0.7, "input_mae": 0.06}


def fake_result(seed, psnr, steps=10, settings=None, test_sets=None):
    return {"run": f"X-seed{seed}", "steps": steps, "stop_reason": "num_steps", "minutes": 1.0 + seed,
            "settings": settings or {},
            "test_sets": test_sets if test_sets is not None else {"plain": scores(psnr),
                                                                   "realistic": scores(psnr - 3, input_psnr=23.0)}}


def test_the_table_gives_both_test_sets_with_mean_and_sample_spread_over_seeds():
    results = [dict(fake_result(0, 27.0), variant="F", seed=0), dict(fake_result(1, 28.0), variant="F", seed=1),
               dict(fake_result(0, 26.0), variant="B", seed=0)]
    rows = ablations.summarize(results, ["B", "D", "F"])
    assert [row["variant"] for row in rows] == ["B", "F"]  # D has no result yet
    f = rows[1]["test_sets"]["plain"]
    assert f["psnr"]["mean"] == pytest.approx(27.5) and f["psnr"]["std"] == pytest.approx(0.70710678)
    assert (f["psnr"]["min"], f["psnr"]["max"]) == (27.0, 28.0) and rows[1]["seeds"] == [0, 1]
    assert rows[1]["test_sets"]["realistic"]["psnr"]["mean"] == pytest.approx(24.5)
    assert rows[1]["minutes"]["mean"] == pytest.approx(1.5) and rows[0]["test_sets"]["plain"]["psnr"]["std"] == 0.0
    markdown = ablations.format_markdown({"command": "cmd", "table": rows, "missing": ["D-seed0"]})
    assert ("| F | checkpoint | 2 | 27.50 ± 0.71 [27.00, 28.00] | +2.50 | 0.8275 ± 0.0007 [0.8270, 0.8280] | "
            "0.0500 ± 0.0000 [0.0500, 0.0500] | 24.50 ± 0.71 | +1.50 | 10 | 1.5 |") in markdown
    assert "| B | — | 1 | 26.00 ± 0.00" in markdown and "Not finished yet: D-seed0" in markdown
    assert "realistic PSNR (dB)" in markdown and "Input (defocused) scores, realistic: PSNR 23.00 dB" in markdown


def test_a_run_is_finished_only_with_the_same_settings_budget_and_test_sets():
    settings, specs = {"model": {"width": 8}}, {"plain": {"files": "p"}, "realistic": {"files": "r"}}
    done = fake_result(0, 27.0, steps=10, settings=settings, test_sets={
        "plain": scores(27.0, spec=specs["plain"]), "realistic": scores(24.0, spec=specs["realistic"])})
    assert ablations.is_finished(done, settings, 10, 0.0, specs)
    assert not ablations.is_finished(done, {"model": {"width": 16}}, 10, 0.0, specs)
    assert not ablations.is_finished(done, settings, 20, 0.0, specs)  # more steps asked: resume
    assert ablations.is_finished(done, settings, 20, 1.0, specs)  # but the minutes are spent
    assert not ablations.is_finished(None, settings, 10, 0.0, specs)
    lacking = dict(done, test_sets={"plain": done["test_sets"]["plain"]})
    assert not ablations.is_finished(lacking, settings, 10, 0.0, specs)
    assert ablation_runs.is_trained(lacking, settings, 10, 0.0)  # only evaluated again
    assert ablation_runs.missing_test_sets(lacking, specs) == ["realistic"]
    changed = dict(specs, realistic={"files": "other"})
    assert ablation_runs.missing_test_sets(done, changed) == ["realistic"]  # a changed test set: scored again


def test_run_configs_differ_only_in_the_ablation_iac_mode_switches_and_seed():
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


def test_the_study_recipe_is_pinned_against_demo_retuning_and_overrides_still_win(monkeypatch):
    from configs import ifan as ifan_configs

    pinned = ablations.run_config("IFAN", 0, 100)
    real_get_config = ifan_configs.get_config

    def retuned_demo(variant=None):
        config = real_get_config(variant)
        config.model.width, config.train.learning_rate, config.train.batch_size = 32, 9e-3, 16
        config.demo.train_scenes, config.demo.val_photos, config.demo.noise_level = 5, ("camera",), 0.5
        return config

    monkeypatch.setattr(ifan_configs, "get_config", retuned_demo)
    config = ablations.run_config("IFAN", 0, 100)
    assert ablations.run_settings(config) == ablations.run_settings(pinned)
    assert (config.model.width, config.train.learning_rate, config.train.batch_size) == (16, 1.5e-3, 4)
    assert config.demo.val_photos == ("motorcycle", "coffee") and config.demo.noise_level == 0.0
    assert config.train.precision == "bfloat16" and config.demo.image_size == 384
    overridden = ablations.run_config("IFAN", 0, 100, {"model.width": 8, "demo.val_photos": "coffee"})
    assert overridden.model.width == 8 and overridden.demo.val_photos == ("coffee",)


def test_switch_variants_train_on_their_own_data_folder():
    assert list(ablations.VARIANTS)[:7] == ["B", "D", "F", "FD", "FR", "IFAN", "IFAN-separable"]
    assert len(ablations.VARIANTS) == 11 and ablations.FLAGS["variants"].default == list(ablations.VARIANTS)
    folders = {}
    for variant in ablations.VARIANTS:
        config = ablations.run_config(variant, 0, 100)
        folders[variant] = ablation_data.data_folder_name(ablation_data.switches_of(config.demo))
    assert {folders[v] for v in list(ablations.VARIANTS)[:7]} == {"data"}
    assert [folders[v] for v in list(ablations.VARIANTS)[7:]] == ["data-segments", "data-highlights", "data-noise",
                                                                   "data-jpeg"]
    segments = ablations.run_config("IFAN+segments", 0, 100)
    assert segments.demo.layout == "segments" and segments.demo.highlight_gain == 1.0
    assert segments.model.iac_mode == "checkpoint" and segments.model.use_rbn and segments.model.use_dme
    assert ablations.run_config("IFAN+highlights", 0, 100).demo.highlight_gain == 4.0
    assert ablations.run_config("IFAN+noise", 0, 100).demo.noise_level == 0.02
    assert ablations.run_config("IFAN+jpeg", 0, 100).demo.jpeg_quality == 90
    user = ablations.run_config("B", 0, 100, {"demo.layout": "segments", "demo.highlight_gain": 2.0})
    assert ablation_data.data_folder_name(ablation_data.switches_of(user.demo)) == "data-segments-highlights2"


def test_the_test_sets_are_the_same_for_every_variant_and_switch_override():
    specs = [ablation_data.test_set_specs(ablations.run_config(v, 0, 100).demo) for v in ablations.VARIANTS]
    specs.append(ablation_data.test_set_specs(ablations.run_config("B", 0, 100, {"demo.jpeg_quality": 50}).demo))
    assert all(spec == specs[0] for spec in specs)
    plain, realistic = specs[0]["plain"], specs[0]["realistic"]
    assert plain["files"] == "data/val-*.tfrecord" and plain["switches"] == ablation_data.SWITCHES_OFF
    assert realistic["files"] == "test-realistic/val-*.tfrecord" and realistic["switches"] == ablation_data.SWITCHES_ON
    assert plain["photos"] == realistic["photos"] == ["motorcycle", "coffee"] and plain["scenes"] == 8
    smaller = ablation_data.test_set_specs(ablations.run_config("B", 0, 100, {"demo.val_scenes": 2}).demo)
    assert smaller["plain"]["scenes"] == smaller["realistic"]["scenes"] == 2  # non-switch overrides do count


def tiny_run(tmp_path, variant="B"):
    return ablations.plan_runs(str(tmp_path), [variant], [0], 2, 0.0, ablations.parse_overrides(TINY))[0]


def test_a_trained_run_lacking_a_test_set_is_only_evaluated(tmp_path, monkeypatch):
    run = tiny_run(tmp_path)
    specs = run.request[3]
    test_sets = {name: (f"{name}-*.tfrecord", spec) for name, spec in specs.items()}
    os.makedirs(run.run_dir)
    plain = scores(27.0, spec=specs["plain"])
    with open(run.result_path, "w") as handle:
        json.dump(fake_result(0, 27.0, steps=2, settings=run.request[0], test_sets={"plain": plain}), handle)
    evaluated = []

    def fake_evaluate(network, file_glob, output_dir, description):
        evaluated.append((network, file_glob, description["test_set"]))
        return {"count": 1, "output": {"psnr": 21.0, "ssim": 0.6, "mae": 0.1},
                "input": {"psnr": 20.0, "ssim": 0.5, "mae": 0.2}}

    def no_training(*args, **kwargs):
        raise AssertionError("a trained run must not be trained again")

    monkeypatch.setattr(ablation_runs, "evaluate_test_set", fake_evaluate)
    monkeypatch.setattr(ablation_runs, "load_trained_network", lambda run, steps: "network")
    monkeypatch.setattr(ablation_runs, "train_and_evaluate", no_training)
    assert ablation_runs.process_run(run, {}, test_sets, 0.0) == "evaluated"
    assert evaluated == [("network", "realistic-*.tfrecord", "realistic")]
    result = ablation_runs.read_json(run.result_path)
    assert result["test_sets"]["plain"] == plain and result["test_sets"]["realistic"]["psnr"] == 21.0
    assert ablations.is_finished(result, *run.request)
    assert ablation_runs.process_run(run, {}, test_sets, 0.0) == "finished" and len(evaluated) == 1


def test_a_trained_run_without_its_saved_model_is_resumed_instead(tmp_path):
    run = tiny_run(tmp_path)
    os.makedirs(run.run_dir)
    assert ablation_runs.load_trained_network(run, 2) is None  # no train/model: the trainer resumes it


def test_a_run_locked_by_another_process_is_skipped(tmp_path, monkeypatch):
    from ifan_tf.training.workdir_lock import WorkdirLock

    run = tiny_run(tmp_path)
    trained = []
    monkeypatch.setattr(ablation_runs, "train_and_evaluate", lambda run, *args: trained.append(run.name) or {
        "steps": 2, "minutes": 0.1, "test_sets": {}})
    train_globs = {"data": "data/train-*.tfrecord"}
    with WorkdirLock(run.run_dir, purpose="someone else"):
        assert ablation_runs.process_run(run, train_globs, {}, 0.0) == "busy"
    assert trained == []
    assert ablation_runs.process_run(run, train_globs, {}, 0.0) == "trained" and trained == ["B-seed0"]


def test_bad_parallel_is_refused(tmp_path, monkeypatch):
    cpus = sorted(os.sched_getaffinity(0))
    assert ablation_workers.check_parallel(1) == cpus[:1]
    with pytest.raises(ValueError, match="at least 1"):
        ablation_workers.check_parallel(0)
    with pytest.raises(ValueError, match=f"more workers than the {len(cpus)} CPUs"):
        ablation_workers.check_parallel(len(cpus) + 1)
    with pytest.raises(ValueError, match="at least 1"):
        ablations.run_study(str(tmp_path / "study"), ["B"], [0], 2, parallel=0)
    assert not (tmp_path / "study").exists()
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    with pytest.raises(RuntimeError, match="before TensorFlow is imported"):
        ablation_workers.pin_worker(cpus[0])


def test_a_worker_refuses_data_the_parent_did_not_make(tmp_path):
    run = tiny_run(tmp_path)
    with pytest.raises(ValueError, match="the parent process synthesizes it"):
        ablation_data.prepare_study_data(str(tmp_path), [run.config.demo], synthesize=False)


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
    arguments = dict(variants=["B", "IFAN+jpeg"], seeds=[0], num_steps=2, overrides=ablations.parse_overrides(TINY))
    document = ablations.run_study(str(study), **arguments)
    assert len(calls) == 2 and document["missing"] == []
    assert [row["variant"] for row in document["table"]] == ["B", "IFAN+jpeg"]
    assert sorted(p.name for p in study.iterdir() if p.name.startswith(("data", "test"))) == [
        "data", "data-jpeg", "test-realistic"]
    realistic = json.loads((study / "test-realistic" / "dataset_summary.json").read_text())["generator"]
    assert list(realistic["splits"]) == ["val"] and realistic["config"]["layout"] == "segments"
    assert realistic["config"]["jpeg_quality"] == 90 and realistic["photos"]["val"] == ["motorcycle", "coffee"]
    saved = json.loads((study / "results.json").read_text())
    row = saved["table"][1]
    assert row["test_sets"]["plain"]["psnr"]["mean"] > 0 and row["test_sets"]["realistic"]["psnr"]["mean"] > 0
    assert row["steps"]["mean"] == 2 and saved["recipe"]["model.width"] == 16
    markdown = (study / "results.md").read_text()
    assert "| B | — | 1 |" in markdown and "| IFAN+jpeg | checkpoint | 1 |" in markdown
    config = json.loads((study / "runs" / "IFAN+jpeg-seed0" / "train" / "config.json").read_text())
    assert config["model"]["iac_mode"] == "checkpoint" and config["data"]["val"] == ""
    assert config["data"]["train"].endswith("data-jpeg/train-*.tfrecord")

    ablations.run_study(str(study), **arguments)
    assert len(calls) == 2  # both finished: skipped
    result_path = study / "runs" / "B-seed0" / "result.json"
    result = json.loads(result_path.read_text())
    del result["test_sets"]["realistic"]  # as if stopped during its evaluation
    result_path.write_text(json.dumps(result))
    ablations.run_study(str(study), **arguments)
    assert len(calls) == 2 and "realistic" in json.loads(result_path.read_text())["test_sets"]  # evaluated only
    result_path.unlink()  # as if stopped before its evaluation
    ablations.run_study(str(study), **arguments)
    assert len(calls) == 3 and calls[-1].endswith("B-seed0/train")
    assert json.loads(result_path.read_text())["steps"] == 2  # resumed at the end
    report = ablations.run_study(str(study), **dict(arguments, num_steps=3), report_only=True)
    assert len(calls) == 3 and sorted(report["missing"]) == ["B-seed0", "IFAN+jpeg-seed0"]  # settings changed


@pytest.mark.slow
def test_two_pinned_workers_share_the_runs_and_the_parent_writes_the_report(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 usable CPUs")
    study = tmp_path / "study"
    command = [sys.executable, "-m", "studies.ablations", f"--study_dir={study}", "--variants=B,F", "--seeds=0",
               "--num_steps=2", "--parallel=2", "--overrides=" + ",".join(TINY)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    document = json.loads((study / "results.json").read_text())
    assert document["missing"] == [] and [row["variant"] for row in document["table"]] == ["B", "F"]
    logs = [(study / "logs" / f"worker-{index}.log").read_text() for index in range(2)]
    cpus = sorted(os.sched_getaffinity(0))
    for index, log in enumerate(logs):
        assert f"pinned to CPU {cpus[index]} (affinity {cpus} -> [{cpus[index]}])" in log
        assert f"usable CPUs [{cpus[index]}]" in log and "intra-op pool: 1 tf_Compute thread(s)" in log
    trained = [name for name in ("B-seed0", "F-seed0") for log in logs if f"training {name} " in log]
    assert sorted(trained) == ["B-seed0", "F-seed0"]  # each run trained once, by one worker


def test_a_signal_during_training_stops_the_study_without_evaluating(tmp_path, monkeypatch):
    import types

    from ifan_tf.training import trainer

    run = tiny_run(tmp_path)
    os.makedirs(run.run_dir)
    monkeypatch.setattr(trainer, "train", lambda config, workdir: types.SimpleNamespace(step=1, stop_reason="SIGINT"))
    with pytest.raises(ablations.StudyStopped, match="stopped by SIGINT at step 1"):
        ablation_runs.train_and_evaluate(run, "data/train-*.tfrecord", {}, 0.0)
    assert not os.path.exists(run.result_path)  # not evaluated: resumed next time
    assert ablation_runs._sittings(run.run_dir)[0]["stop_reason"] == "SIGINT"
