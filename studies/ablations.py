"""The paper's Table 1 ablations, the IAC question and the realism switches, trained side by side at demo scale.

Usage:
  python -m studies.ablations --study_dir=runs/ablations                  # all 11 variants x 2 seeds
  python -m studies.ablations --study_dir=runs/ablations --parallel=2     # 2 workers, one CPU each
  python -m studies.ablations --study_dir=runs/ablations --report_only    # table of what has finished
  python -m studies.ablations --variants=F,IFAN,IFAN-separable --seeds=0,1,2 --num_steps=1500

Variants (``VARIANTS``, in table order): ``B``, ``D``, ``F``, ``FD``, ``FR``, ``IFAN`` of paper
Table 1 with the released IAC (``iac_mode="checkpoint"``: ``kernel1`` in both passes),
``IFAN-separable`` with the intended IAC, then ``IFAN+segments``, ``IFAN+highlights``,
``IFAN+noise`` and ``IFAN+jpeg``: released IFAN trained on synthetic data with one realism switch
on (``ablation_data.SWITCHES_ON``: segment layout, highlight gain 4, noise 0.02, JPEG 90).

Settings: ``configs/ifan.py:demo`` with the variant's ablation, then ``STUDY_RECIPE`` (the demo
recipe pinned for the study: later retuning of the demo does not change it), the variant's IAC
mode and switches, ``--num_steps`` (the demo's learning-rate cuts scaled to it) and the seed,
and last ``--overrides=model.width=8,demo.train_scenes=16,...`` for every run. Each distinct
switch set trains on its own synthetic folder (``data``, ``data-segments``, ...; the demo's
training photographs), made by the parent before any training.

Test sets, the same for every variant and independent of the switches and their overrides
(``ablation_data``): ``plain``, the validation split of ``data`` (the demo's validation
photographs, never trained on, no switches), and ``realistic``, the same photographs and scenes
with all four switches on (``test-realistic``). Every run is scored on both, without LPIPS.

Parallel workers: ``--parallel=N`` (1 to the number of usable CPUs) synthesizes all data, then
starts N worker subprocesses, each pinned to one CPU before TensorFlow is imported, logging to
``STUDY_DIR/logs/worker-I.log`` (``ablation_workers``). Each walks the run list (seed-major) and
claims the first run that is unfinished and whose run lock it can take; the lock is held for the
training and the evaluation, and a run locked by another process is skipped. The parent passes
Ctrl-C/SIGTERM on to the workers, writes the report whenever a run finishes and at the end, and
names any worker that failed. With ``--parallel=1`` the runs train in this process (still under
their run locks).

Resume: rerunning the command skips finished runs (same settings, ``num_steps`` reached or
``--max_minutes_per_run`` spent, scores on both current test sets) and resumes unfinished ones
from their last checkpoint, so the study can run over several sittings. A trained run lacking a
test set's scores (or scored on a test set that changed) is only evaluated, from its saved model.
A run's minutes are the sum of its completed sittings' wall-clock time in ``train`` (model
building and tracing included, the evaluation not); a sitting that is killed is not counted, and
its steps since the last checkpoint are redone. Ctrl-C or SIGTERM checkpoints the run in training
and stops the study. A run whose loss turns non-finite is logged and left unfinished; the others
go on. Layout of a run folder: ``ablation_runs``.

Results: ``results.json`` (the recipe, the test sets, per-variant mean, sample standard deviation
and range over the seeds of PSNR, SSIM and MAE on each test set and of the input's, steps and
minutes, and every run's scores) and ``results.md`` (the table), written atomically.
"""

import ast
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from studies import ablation_workers  # noqa: E402
from studies.ablation_data import (SWITCHES_OFF, SWITCHES_ON, TEST_SETS, prepare_study_data,  # noqa: E402
                                      test_set_specs)
from studies.ablation_runs import (METRICS, Run, StudyStopped, is_finished, read_json,  # noqa: E402
                                      run_name, run_pending)
from ifan_tf.io.atomic_write import atomic_write_bytes, write_json_atomic  # noqa: E402

#: variant name -> (configs/ifan.py ablation variant, IAC mode, realism switches of its training data)
VARIANTS = {
    "B": ("B", "checkpoint", {}), "D": ("D", "checkpoint", {}), "F": ("F", "checkpoint", {}),
    "FD": ("FD", "checkpoint", {}), "FR": ("FR", "checkpoint", {}), "IFAN": ("IFAN", "checkpoint", {}),
    "IFAN-separable": ("IFAN", "separable", {}),
    "IFAN+segments": ("IFAN", "checkpoint", {"layout": SWITCHES_ON["layout"]}),
    "IFAN+highlights": ("IFAN", "checkpoint", {"highlight_gain": SWITCHES_ON["highlight_gain"]}),
    "IFAN+noise": ("IFAN", "checkpoint", {"noise_level": SWITCHES_ON["noise_level"]}),
    "IFAN+jpeg": ("IFAN", "checkpoint", {"jpeg_quality": SWITCHES_ON["jpeg_quality"]}),
}
#: The study's settings, applied over ``configs/ifan.py:demo`` (whose later retuning must not change
#: the study) and under ``--overrides``: the demo recipe as it was when the study was designed.
STUDY_RECIPE = {
    "model.width": 16, "model.num_iterations": 8, "model.reblur_iterations": 8,
    "data.crop_size": 128, "data.shuffle_buffer": 64,
    "train.batch_size": 4, "train.learning_rate": 1.5e-3, "train.lr_decay_factor": 0.3, "train.precision": "bfloat16",
    "train.beta_2": 0.999,
    "demo.train_scenes": 96, "demo.val_scenes": 8, "demo.image_size": 384, "demo.max_coc": 20.0, "demo.seed": 0,
    "demo.train_photos": ("astronaut", "chelsea", "rocket", "camera", "grass", "gravel", "brick", "clock", "coins",
                          "moon", "immunohistochemistry", "hubble_deep_field", "retina"),
    "demo.val_photos": ("motorcycle", "coffee"),
    **{f"demo.{name}": value for name, value in SWITCHES_OFF.items()},
}
RESULTS_JSON = "results.json"
RESULTS_MARKDOWN = "results.md"
# Learning-rate cuts at 73 % and 91 % of the steps (the demo's when the study was set up), scaled to --num_steps.
DEMO_LR_FRACTIONS = (1600 / 2200, 2000 / 2200)


def parse_overrides(items):
    """``["model.width=8", "demo.image_size=64"]`` -> ``{"model.width": 8, ...}`` (Python literals, else text)."""
    overrides = {}
    for item in items or ():
        key, separator, text = item.partition("=")
        if not separator or key.count(".") != 1:
            raise ValueError(f"--overrides entries look like section.field=value, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[key.strip()] = value
    return overrides


def _set_field(config, dotted, value, source):
    section, _, field = dotted.partition(".")
    if section not in config or field not in config[section]:
        raise ValueError(f"{source}: unknown config field {dotted!r}")
    current = config[section][field]
    if isinstance(current, (tuple, list)):
        value = type(current)((value,) if isinstance(value, str) else value)
    config[section][field] = value


def run_config(variant, seed, num_steps, overrides=None):
    """The training config of one run.

    ``configs/ifan.py:demo`` with the variant's ablation, then ``STUDY_RECIPE``, the variant's IAC
    mode and realism switches, the seed and step budget (the demo's learning-rate cuts scaled to
    ``num_steps``), and last the user's ``overrides`` (``{"section.field": value}``).
    """
    from configs import ifan as ifan_configs

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    ablation, iac_mode, switches = VARIANTS[variant]
    config = ifan_configs.get_config(f"demo,{ablation}")
    for dotted, value in STUDY_RECIPE.items():
        _set_field(config, dotted, value, "STUDY_RECIPE")
    config.model.iac_mode = iac_mode
    for name, value in switches.items():
        config.demo[name] = value
    config.train.seed = int(seed)
    config.train.num_steps = int(num_steps)
    config.train.lr_boundaries = tuple(max(1, round(num_steps * fraction)) for fraction in DEMO_LR_FRACTIONS)
    config.train.max_minutes = 0.0
    config.train.lr_boundaries_follow_time = False  # the study's schedule depends on steps only
    config.train.undo_cooldown_steps = 0  # as when the study was run: undo, no cool-down
    config.train.reblur_lr_scale = 1.0  # likewise
    config.train.ema_decay = 0.0  # likewise: the last weights are evaluated
    config.train.image_every = 0  # no TensorBoard images: time goes to training
    config.train.checkpoint_every = 500  # an interrupted run resumes from its last checkpoint
    config.eval.every = 0  # the held-out evaluation happens after training
    config.eval.every_minutes = 0.0
    for dotted, value in (overrides or {}).items():
        _set_field(config, dotted, value, "--overrides")
    return config


def run_settings(config):
    """What must be equal for two runs' results to be comparable (JSON-normalised)."""
    train = config.train
    settings = {"model": config.model.to_dict(), "data": {"crop_size": config.data.crop_size},
                "demo": config.demo.to_dict(),
                "train": {key: train[key] for key in ("num_steps", "batch_size", "learning_rate", "lr_boundaries",
                                                      "lr_decay_factor", "precision", "seed")}}
    return json.loads(json.dumps(settings))


def plan_runs(study_dir, variants, seeds, num_steps, max_minutes=0.0, overrides=None):
    """The study's runs, seed-major (an interrupted study has every variant at a seed before the next seed)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if num_steps < 1 or not seeds or not variants:
        raise ValueError("--num_steps must be >= 1 and --seeds and --variants must name at least one each")
    runs = []
    for seed in seeds:
        for variant in variants:
            config = run_config(variant, seed, num_steps, overrides)
            specs = json.loads(json.dumps(test_set_specs(config.demo)))
            runs.append(Run(variant, seed, config, os.path.join(study_dir, "runs", run_name(variant, seed)),
                            (run_settings(config), num_steps, max_minutes, specs)))
    return runs


def _spread(values):
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def summarize(results, variants):
    """Table rows, one per variant with results: mean, std (sample, over seeds), min and max of each
    metric per test set (``row["test_sets"][name]``), steps and minutes."""
    rows = []
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        if not runs:
            continue
        ablation, iac_mode, switches = VARIANTS.get(variant, (None, None, {}))
        row = {"variant": variant, "ablation": ablation, "iac_mode": iac_mode, "switches": switches,
               "seeds": [r["seed"] for r in runs], "test_sets": {}}
        for name in TEST_SETS:
            if all(name in r["test_sets"] for r in runs):
                scores = [r["test_sets"][name] for r in runs]
                row["test_sets"][name] = {"count": scores[0]["count"], **{
                    metric: _spread([s[metric] for s in scores]) for metric in METRICS + tuple(
                        f"input_{m}" for m in METRICS)}}
        row.update({name: _spread([r[name] for r in runs]) for name in ("steps", "minutes")})
        rows.append(row)
    return rows


def format_markdown(document):
    """The results table as Markdown (mean ± sample standard deviation over seeds)."""
    rows = document["table"]

    def cell(spread, digits, with_range=True):
        text = f"{spread['mean']:.{digits}f} ± {spread['std']:.{digits}f}"
        return text + (f" [{spread['min']:.{digits}f}, {spread['max']:.{digits}f}]" if with_range else "")

    def scores(row, name):
        return row["test_sets"].get(name)

    specs = document.get("test_sets") or {}
    counts = {name: next((scores(r, name)["count"] for r in rows if scores(r, name)),
                         (specs.get(name) or {}).get("scenes", 0)) for name in TEST_SETS}
    switches_on = ", ".join(f"{name}={value}" for name, value in SWITCHES_ON.items())
    lines = [f"Ablation study: {document['command']}", "",
             f"Test sets, the same for every variant (photographs never used in training): plain = "
             f"{counts['plain']} held-out scenes without realism switches; realistic = the same photographs "
             f"and scenes ({counts['realistic']}) with every switch on ({switches_on}). "
             "Mean ± sample standard deviation over seeds [min, max]; gain = output minus input PSNR.", "",
             "| variant | IAC | seeds | plain PSNR (dB) | gain (dB) | SSIM | MAE | realistic PSNR (dB) | gain (dB) "
             "| steps | minutes/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        iac = "—" if row["variant"] in ("B", "D") else row["iac_mode"]
        cells = []
        plain, realistic = scores(row, "plain"), scores(row, "realistic")
        if plain:
            cells += [cell(plain["psnr"], 2), f"{plain['psnr']['mean'] - plain['input_psnr']['mean']:+.2f}",
                      cell(plain["ssim"], 4), cell(plain["mae"], 4)]
        else:
            cells += ["—"] * 4
        if realistic:
            cells += [cell(realistic["psnr"], 2, with_range=False),
                      f"{realistic['psnr']['mean'] - realistic['input_psnr']['mean']:+.2f}"]
        else:
            cells += ["—"] * 2
        lines.append(f"| {row['variant']} | {iac} | {len(row['seeds'])} | " + " | ".join(cells)
                     + f" | {row['steps']['mean']:.0f} | {row['minutes']['mean']:.1f} |")
    for name in TEST_SETS:
        first = next((scores(r, name) for r in rows if scores(r, name)), None)
        if first:
            lines += ["", f"Input (defocused) scores, {name}: PSNR {first['input_psnr']['mean']:.2f} dB, "
                      f"SSIM {first['input_ssim']['mean']:.4f}, MAE {first['input_mae']['mean']:.4f}."]
    if document["missing"]:
        lines += ["", f"Not finished yet: {', '.join(document['missing'])}."]
    return "\n".join(lines) + "\n"


def write_report(study_dir, runs, command):
    """Collects every finished run's ``result.json`` and writes ``results.json`` and ``results.md``."""
    results, missing = [], []
    for run in runs:
        result = read_json(run.result_path)
        if not is_finished(result, *run.request):
            missing.append(run.name)
            continue
        results.append(dict(result, variant=run.variant, seed=run.seed))
    variants = list(dict.fromkeys(run.variant for run in runs))
    document = {"command": command, "variants": variants, "seeds": list(dict.fromkeys(run.seed for run in runs)),
                "recipe": {key: list(value) if isinstance(value, tuple) else value
                           for key, value in STUDY_RECIPE.items()},
                "test_sets": runs[0].request[3] if runs else {},
                "table": summarize(results, variants), "missing": missing,
                "runs": [{key: value for key, value in r.items() if key != "settings"} for r in results]}
    write_json_atomic(os.path.join(study_dir, RESULTS_JSON), document, allow_nan=False)
    atomic_write_bytes(os.path.join(study_dir, RESULTS_MARKDOWN), format_markdown(document).encode("utf-8"))
    return document


def run_study(study_dir, variants, seeds, num_steps, max_minutes=0.0, overrides=None, report_only=False,
              command="", parallel=1, worker_command=None, worker_index=None):
    """Trains and evaluates every unfinished run, then writes the results table.

    Args:
      parallel: worker subprocesses (``ablation_workers``); 1 trains in this process.
      worker_command: the command of a worker without its worker flags (needed if ``parallel`` > 1).
      worker_index: set in a worker: process the runs (the data was made by the parent), no report.
    Returns:
      The ``results.json`` document (None in a worker).
    Raises:
      StudyStopped: a signal stopped the study or a worker failed (``.document``: the report written).
    """
    cpus = ablation_workers.check_parallel(parallel) if worker_index is None and not report_only else None
    runs = plan_runs(study_dir, variants, seeds, num_steps, max_minutes, overrides)
    if report_only:
        return write_report(study_dir, runs, command)
    demos = [run.config.demo for run in runs]
    if worker_index is not None:
        train_globs, test_sets = prepare_study_data(study_dir, demos, synthesize=False)
        print(f"worker {worker_index}: {ablation_workers.describe_threads()}", flush=True)
        run_pending(runs, train_globs, test_sets, max_minutes)
        return None
    os.makedirs(study_dir, exist_ok=True)
    train_globs, test_sets = prepare_study_data(study_dir, demos)
    if parallel == 1:
        try:
            run_pending(runs, train_globs, test_sets, max_minutes,
                        after_run=lambda: write_report(study_dir, runs, command))
        except StudyStopped as stopped:
            raise StudyStopped(str(stopped), write_report(study_dir, runs, command)) from None
        return write_report(study_dir, runs, command)
    if not worker_command:
        raise ValueError("--parallel > 1 needs the worker command")
    seen = {"finished": None}

    def progress():
        finished = sum(is_finished(read_json(run.result_path), *run.request) for run in runs)
        if finished != seen["finished"]:
            seen["finished"] = finished
            write_report(study_dir, runs, command)
            print(f"{time.strftime('%H:%M:%S')} {finished}/{len(runs)} runs finished "
                  f"({os.path.join(study_dir, RESULTS_MARKDOWN)})", flush=True)

    failures, signals = ablation_workers.run_workers(worker_command, cpus, study_dir, progress)
    document = write_report(study_dir, runs, command)
    problems = failures + ([f"stopped by {', '.join(signals)}; rerun the command to resume"] if signals else [])
    if problems:
        raise StudyStopped("\n".join(problems), document)
    return document


flags.DEFINE_string("study_dir", "runs/ablations", "Folder of the study (data, one folder per run, results).")
flags.DEFINE_list("variants", list(VARIANTS), f"Variants to train, in table order: {', '.join(VARIANTS)}.")
flags.DEFINE_list("seeds", ["0", "1"], "Training seeds (at least 2 for a spread).")
flags.DEFINE_integer("num_steps", 1000, "Training steps per run (11 variants x 2 seeds in ~1.2 h with --parallel=2 on 2 cores)")
flags.DEFINE_float("max_minutes_per_run", 0.0, "Training minutes per run over all its sittings; 0 = no limit.")
flags.DEFINE_list("overrides", [], "Config fields for every run (over STUDY_RECIPE), e.g. "
                  "model.width=8,demo.train_scenes=16.")
flags.DEFINE_bool("report_only", False, "Only write the table of the finished runs; train nothing.")
flags.DEFINE_integer("parallel", 1, "Worker subprocesses, one CPU each (at most the usable CPUs); 1 = this process.")
flags.DEFINE_integer("worker_index", -1, "Internal (set by the parent for its workers): this worker's number.")
flags.DEFINE_integer("worker_cpu", -1, "Internal: the CPU this worker pins itself to.")
flags.DEFINE_integer("worker_parent", 0, "Internal: the parent's pid (the worker stops if the parent goes away).")
FLAGS = flags.FLAGS


def _worker_main(seeds):
    print(ablation_workers.pin_worker(FLAGS.worker_cpu), flush=True)  # before TensorFlow is imported
    if FLAGS.worker_parent:
        ablation_workers.watch_parent(FLAGS.worker_parent)
    try:
        run_study(FLAGS.study_dir, FLAGS.variants, seeds, FLAGS.num_steps, FLAGS.max_minutes_per_run,
                  parse_overrides(FLAGS.overrides), worker_index=FLAGS.worker_index)
    except (StudyStopped, KeyboardInterrupt) as stopped:  # a signal: the run in training was checkpointed
        print(f"worker {FLAGS.worker_index}: {stopped or 'interrupted'}", flush=True)
        raise SystemExit(ablation_workers.WORKER_EXIT_INTERRUPTED) from None
    print(f"worker {FLAGS.worker_index}: no run left to claim", flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
        if FLAGS.worker_index >= 0:
            return _worker_main(seeds)
        document = run_study(FLAGS.study_dir, FLAGS.variants, seeds, FLAGS.num_steps, FLAGS.max_minutes_per_run,
                             parse_overrides(FLAGS.overrides), FLAGS.report_only,
                             command="python -m studies.ablations " + " ".join(sys.argv[1:]),
                             parallel=FLAGS.parallel,
                             worker_command=[sys.executable, "-m", "studies.ablations", *sys.argv[1:]])
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    except StudyStopped as stopped:
        if stopped.document:
            print(format_markdown(stopped.document))
        raise SystemExit(f"error: the study stopped before the end:\n{stopped}") from None
    print(format_markdown(document))
    print(f"wrote {os.path.join(FLAGS.study_dir, RESULTS_JSON)} and {os.path.join(FLAGS.study_dir, RESULTS_MARKDOWN)}")
    if any(math.isnan(scores["psnr"]["mean"]) for row in document["table"] for scores in row["test_sets"].values()):
        raise SystemExit("error: a run has no finite PSNR")


if __name__ == "__main__":
    app.run(main)
