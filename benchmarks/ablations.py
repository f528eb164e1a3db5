"""The paper's Table 1 ablations and the IAC question, trained side by side at demo scale.

Usage:
  python -m benchmarks.ablations --study_dir=runs/ablations                  # all 7 variants x 2 seeds
  python -m benchmarks.ablations --study_dir=runs/ablations --report_only    # table of what has finished
  python -m benchmarks.ablations --variants=F,IFAN,IFAN-separable --seeds=0,1,2 --num_steps=1500

Variants (``VARIANTS``): ``B``, ``D``, ``F``, ``FD``, ``FR``, ``IFAN`` of paper Table 1 with the
released IAC (``iac_mode="checkpoint"``: ``kernel1`` in both passes), and ``IFAN-separable`` with
the intended IAC. Every run trains the demo-sized model (``configs/ifan.py:demo``, any field
overridable with ``--overrides=model.width=16,demo.train_scenes=96,...``) for ``--num_steps``
steps (the demo's learning-rate cuts scaled to that length) on the same synthetic scenes
(``ifan_tf.modes.demo.synthesize_demo_data``: the demo's training photographs), with its own
seed, and is then evaluated on held-out scenes made from photographs never used in training
(the demo's validation photographs), without LPIPS.

Layout of ``--study_dir``: ``data/`` (the shared synthetic set), ``runs/VARIANT-seedS/`` per run
with ``train/`` (the trainer's work directory: checkpoints, model), ``eval/``, ``sittings.jsonl``
(one line per training sitting: steps and minutes) and, once the run is finished, a small
``result.json``. Rerunning the command skips finished runs (same settings, ``num_steps`` reached
or ``--max_minutes_per_run`` spent) and resumes unfinished ones from their last checkpoint, so
the study can run over several sittings. A run's minutes are the sum of its completed sittings'
wall-clock time in ``train`` (model building and tracing included, the evaluation not); a sitting
that is killed is not counted, and its steps since the last checkpoint are redone. A run whose
loss turns non-finite is logged and left unfinished; the others go on.
Results: ``results.json`` and ``results.md`` (mean, sample standard deviation and range over the
seeds of PSNR, SSIM and MAE, with the steps and minutes per run), written atomically after
every run.
"""

import ast
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from ifan_tf.atomic_write import atomic_write_bytes, write_json_atomic  # noqa: E402

#: variant name -> (configs/ifan.py ablation variant, IAC mode)
VARIANTS = {
    "B": ("B", "checkpoint"), "D": ("D", "checkpoint"), "F": ("F", "checkpoint"), "FD": ("FD", "checkpoint"),
    "FR": ("FR", "checkpoint"), "IFAN": ("IFAN", "checkpoint"), "IFAN-separable": ("IFAN", "separable"),
}
METRICS = ("psnr", "ssim", "mae")
RESULT_FILE = "result.json"
SITTINGS_FILE = "sittings.jsonl"
RESULTS_JSON = "results.json"
RESULTS_MARKDOWN = "results.md"
# The demo's learning-rate cuts (1600 and 2000 of 2200 steps), scaled to --num_steps.
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


def run_config(variant, seed, num_steps, overrides=None):
    """The training config of one run: demo model and data, the variant's ablation and IAC mode, ``seed``."""
    from configs import ifan as ifan_configs

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    ablation, iac_mode = VARIANTS[variant]
    config = ifan_configs.get_config(f"demo,{ablation}")
    config.model.iac_mode = iac_mode
    config.train.seed = int(seed)
    config.train.num_steps = int(num_steps)
    config.train.lr_boundaries = tuple(max(1, round(num_steps * fraction)) for fraction in DEMO_LR_FRACTIONS)
    config.train.max_minutes = 0.0
    config.train.image_every = 0  # no TensorBoard images: time goes to training
    config.eval.every = 0  # the held-out evaluation happens after training
    config.eval.every_minutes = 0.0
    for dotted, value in (overrides or {}).items():
        section, field = dotted.split(".")
        if section not in config or field not in config[section]:
            raise ValueError(f"--overrides: unknown config field {dotted!r}")
        config[section][field] = type(config[section][field])(value) if isinstance(
            config[section][field], (tuple, list)) else value
    return config


def run_settings(config):
    """What must be equal for two runs' results to be comparable (JSON-normalised)."""
    train = config.train
    settings = {"model": config.model.to_dict(), "data": {"crop_size": config.data.crop_size},
                "demo": config.demo.to_dict(),
                "train": {key: train[key] for key in ("num_steps", "batch_size", "learning_rate", "lr_boundaries",
                                                      "lr_decay_factor", "precision", "seed")}}
    return json.loads(json.dumps(settings))


def run_name(variant, seed):
    return f"{variant}-seed{seed}"


def read_json(path):
    """The JSON document at ``path``, or None if it is missing or unreadable (logged)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logging.warning("%s: ignored (%s)", path, error)
        return None


def _sittings(run_dir):
    lines = []
    try:
        with open(os.path.join(run_dir, SITTINGS_FILE)) as handle:
            lines = [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        pass
    return lines


def _append_sitting(run_dir, record):
    path = os.path.join(run_dir, SITTINGS_FILE)
    previous = b""
    if os.path.exists(path):
        with open(path, "rb") as handle:
            previous = handle.read()
    atomic_write_bytes(path, previous + (json.dumps(record) + "\n").encode("utf-8"))


def is_finished(result, settings, num_steps, max_minutes):
    """Whether a run's ``result.json`` document answers the current request."""
    if not result or result.get("settings") != settings:
        return False
    return result["steps"] >= num_steps or bool(max_minutes) and result["minutes"] >= max_minutes


def train_and_evaluate(run_dir, config, test_glob, max_minutes):
    """Trains (or resumes) one run, evaluates it on ``test_glob`` and writes its ``result.json``."""
    from ifan_tf.evaluation.evaluate import evaluate, skipped_lpips
    from ifan_tf.training import trainer

    settings = run_settings(config)
    spent = sum(sitting["minutes"] for sitting in _sittings(run_dir))
    if max_minutes:
        with config.unlocked():
            config.train.max_minutes = max(max_minutes - spent, 1e-3)
    start = time.monotonic()
    result = trainer.train(config, os.path.join(run_dir, "train"))
    minutes = (time.monotonic() - start) / 60.0
    _append_sitting(run_dir, {"step": result.step, "stop_reason": result.stop_reason, "minutes": minutes})
    summary = evaluate(result.state.network, [test_glob], output_dir=os.path.join(run_dir, "eval"),
                       lpips=skipped_lpips("not computed in the ablation study"), show_progress=False,
                       description={"run": os.path.basename(run_dir), "step": result.step})
    document = {"run": os.path.basename(run_dir), "steps": result.step, "stop_reason": result.stop_reason,
                "minutes": spent + minutes, "count": summary["count"],
                **{name: summary["output"][name] for name in METRICS},
                **{f"input_{name}": summary["input"][name] for name in METRICS},
                "settings": settings}
    write_json_atomic(os.path.join(run_dir, RESULT_FILE), document, allow_nan=False)
    return document


def _spread(values):
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def summarize(results, variants):
    """Table rows, one per variant with results: mean, std (sample, over seeds), min and max of each metric."""
    rows = []
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        if not runs:
            continue
        row = {"variant": variant, "iac_mode": VARIANTS[variant][1] if variant in VARIANTS else None,
               "seeds": [r["seed"] for r in runs], "count": runs[0]["count"]}
        for name in METRICS + tuple(f"input_{m}" for m in METRICS) + ("steps", "minutes"):
            row[name] = _spread([r[name] for r in runs])
        rows.append(row)
    return rows


def format_markdown(document):
    """The results table as Markdown (mean +- sample standard deviation over seeds)."""
    rows = document["table"]
    lines = [f"Ablation study: {document['command']}", "",
             f"Held-out scenes: {rows[0]['count'] if rows else 0} (photographs never used in training); "
             "mean ± standard deviation over seeds [min, max].", "",
             "| variant | IAC | seeds | PSNR (dB) | gain (dB) | SSIM | MAE | steps | minutes/run |",
             "|---|---|---|---|---|---|---|---|---|"]

    def cell(spread, digits):
        return (f"{spread['mean']:.{digits}f} ± {spread['std']:.{digits}f} "
                f"[{spread['min']:.{digits}f}, {spread['max']:.{digits}f}]")

    for row in rows:
        iac = "—" if row["variant"] in ("B", "D") else row["iac_mode"]
        gain = row["psnr"]["mean"] - row["input_psnr"]["mean"]
        lines.append(f"| {row['variant']} | {iac} | {len(row['seeds'])} | {cell(row['psnr'], 2)} | {gain:+.2f} | "
                     f"{cell(row['ssim'], 4)} | {cell(row['mae'], 4)} | {row['steps']['mean']:.0f} | "
                     f"{row['minutes']['mean']:.1f} |")
    if rows:
        first = rows[0]
        lines += ["", f"Input (defocused) scores: PSNR {first['input_psnr']['mean']:.2f} dB, "
                  f"SSIM {first['input_ssim']['mean']:.4f}, MAE {first['input_mae']['mean']:.4f}."]
    if document["missing"]:
        lines += ["", f"Not finished yet: {', '.join(document['missing'])}."]
    return "\n".join(lines) + "\n"


def write_report(study_dir, variants, seeds, settings, command):
    """Collects every finished run's ``result.json`` and writes ``results.json`` and ``results.md``."""
    results, missing = [], []
    for variant in variants:
        for seed in seeds:
            run_dir = os.path.join(study_dir, "runs", run_name(variant, seed))
            result = read_json(os.path.join(run_dir, RESULT_FILE))
            wanted = settings.get((variant, seed)) if settings else None
            if result is None or (wanted is not None and not is_finished(result, *wanted)):
                missing.append(run_name(variant, seed))
                continue
            results.append(dict(result, variant=variant, seed=seed))
    document = {"command": command, "variants": list(variants), "seeds": list(seeds),
                "table": summarize(results, variants), "missing": missing,
                "runs": [{key: value for key, value in r.items() if key != "settings"} for r in results]}
    write_json_atomic(os.path.join(study_dir, RESULTS_JSON), document, allow_nan=False)
    atomic_write_bytes(os.path.join(study_dir, RESULTS_MARKDOWN), format_markdown(document).encode("utf-8"))
    return document


def run_study(study_dir, variants, seeds, num_steps, max_minutes=0.0, overrides=None, report_only=False,
              command=""):
    """Trains and evaluates every unfinished (variant, seed) run, then writes the results table.

    Returns:
      The ``results.json`` document.
    """
    from ifan_tf.modes.demo import synthesize_demo_data
    from ifan_tf.training.trainer import NonFiniteLossError

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if num_steps < 1 or not seeds:
        raise ValueError("--num_steps must be >= 1 and --seeds must name at least one seed")
    # Seed-major: an interrupted study has every variant at the first seed before any second seed.
    configs = {(v, s): run_config(v, s, num_steps, overrides) for s in seeds for v in variants}
    requests = {key: (run_settings(config), num_steps, max_minutes) for key, config in configs.items()}
    if report_only:
        return write_report(study_dir, variants, seeds, requests, command)
    os.makedirs(study_dir, exist_ok=True)
    any_config = next(iter(configs.values()))
    train_glob, test_glob = synthesize_demo_data(any_config.demo, os.path.join(study_dir, "data"))
    for (variant, seed), config in configs.items():
        run_dir = os.path.join(study_dir, "runs", run_name(variant, seed))
        if is_finished(read_json(os.path.join(run_dir, RESULT_FILE)), *requests[(variant, seed)]):
            logging.info("%s: finished, skipped", run_dir)
            continue
        with config.unlocked():
            config.data.train, config.data.val = train_glob, ""
        print(f"training {run_name(variant, seed)} ({num_steps} steps) in {run_dir}", flush=True)
        os.makedirs(run_dir, exist_ok=True)
        try:
            result = train_and_evaluate(run_dir, config, test_glob, max_minutes)
        except NonFiniteLossError as error:  # the other runs go on; this one stays unfinished
            logging.error("%s: %s", run_dir, error)
            print(f"  {run_name(variant, seed)}: stopped, non-finite loss (see the log); going on", flush=True)
            continue
        print(f"  {run_name(variant, seed)}: {result['steps']} steps, {result['minutes']:.1f} min, held-out PSNR "
              f"{result['psnr']:.3f} dB (input {result['input_psnr']:.3f}), SSIM {result['ssim']:.4f}", flush=True)
        write_report(study_dir, variants, seeds, requests, command)
    return write_report(study_dir, variants, seeds, requests, command)


flags.DEFINE_string("study_dir", "runs/ablations", "Folder of the study (data, one folder per run, results).")
flags.DEFINE_list("variants", list(VARIANTS), f"Variants to train: {', '.join(VARIANTS)}.")
flags.DEFINE_list("seeds", ["0", "1"], "Training seeds (at least 2 for a spread).")
flags.DEFINE_integer("num_steps", 1500, "Training steps per run (7 variants x 2 seeds x ~10 min ~ 2.5 h on 2 cores).")
flags.DEFINE_float("max_minutes_per_run", 0.0, "Training minutes per run over all its sittings; 0 = no limit.")
flags.DEFINE_list("overrides", [], "Config fields for every run, e.g. model.width=8,demo.train_scenes=16.")
flags.DEFINE_bool("report_only", False, "Only write the table of the finished runs; train nothing.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
        document = run_study(FLAGS.study_dir, FLAGS.variants, seeds, FLAGS.num_steps, FLAGS.max_minutes_per_run,
                             parse_overrides(FLAGS.overrides), FLAGS.report_only,
                             command="python -m benchmarks.ablations " + " ".join(sys.argv[1:]))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    except RuntimeError as error:  # e.g. WorkdirInUseError: another study trains that run now
        raise SystemExit(f"error: {type(error).__name__}: {error}") from None
    print(format_markdown(document))
    print(f"wrote {os.path.join(FLAGS.study_dir, RESULTS_JSON)} and {os.path.join(FLAGS.study_dir, RESULTS_MARKDOWN)}")
    if any(math.isnan(row["psnr"]["mean"]) for row in document["table"]):
        raise SystemExit("error: a run has no finite PSNR")


if __name__ == "__main__":
    app.run(main)
