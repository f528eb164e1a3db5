"""``main.py --mode=demo --workdir=DIR [--config=configs/ifan.py:demo] [--config.FIELD=VALUE ...]``.

The main job on a fresh machine, on CPU, in about a quarter of an hour:

1. synthesize a small dual-pixel set from scikit-image's bundled photographs into ``DIR/data``
   (``ifan_tf.synthesis.demo_data``; the validation photographs are never used for training; reused
   when it already exists with the same settings);
2. train the small demo configuration for ``train.max_minutes`` into ``DIR/train`` (a fresh run:
   an earlier demo run there is replaced), validating on the held-out photographs every
   ``eval.every_minutes``;
3. evaluate the final model on the held-out scenes (``DIR/eval``: CSV, JSON) and print input vs
   output PSNR / SSIM and the held-out PSNR curve against training minutes;
4. write ``DIR/demo_comparison.png`` (input, output and ground truth of a few held-out scenes side
   by side) and ``DIR/demo_psnr_curve.png`` (the held-out PSNR curve) next to
   ``DIR/demo_summary.json`` (``demo_figures``), and print their paths.

The demo deletes only what a demo made: it marks the work directories it creates
(``DIR/.ifan_demo``), refuses a non-empty ``DIR`` without that marker, and refuses to replace
``DIR/train`` when either folder holds anything the demo or the trainer does not write (e.g. a
user's file). Two demos on one ``DIR`` at once: the second is refused (``workdir_lock``).

Without ``--config``, ``main.py`` passes ``configs/ifan.py:demo`` as ``default_config`` (the
library does not import ``configs``). Errors follow ``ifan_tf.modes``: a refused work directory
or a configuration without ``demo`` exits with 2, a training stopped on non-finite losses with 1.
"""

import functools
import os
import shutil

from absl import logging

from ifan_tf.io.atomic_write import write_json_atomic
from ifan_tf.modes import FAILED, OK, ModeError, demo_figures
from ifan_tf.synthesis.demo_data import synthesize_demo_data
from ifan_tf.training import workdir_lock

SUMMARY_FILE = "demo_summary.json"
MARKER_FILE = ".ifan_demo"
DEMO_OUTPUTS = (MARKER_FILE, workdir_lock.LOCK_FILE, "data", "train", "eval", SUMMARY_FILE,
                demo_figures.COMPARISON_FILE, demo_figures.CURVE_FILE)
FIGURE_SCENES = 3  # held-out scenes in the comparison image


class DemoWorkdirError(RuntimeError):
    """The work directory holds files that the demo did not make; nothing was changed."""


def _foreign_entries(directory, ours):
    """Sorted entries of ``directory`` for which ``ours(name)`` is False."""
    return sorted(name for name in os.listdir(directory) if not ours(name))


def check_demo_workdir(workdir):
    """Refuses (``DemoWorkdirError``) a ``workdir`` the demo may not replace parts of; see module docstring.

    Returns:
      True if ``workdir`` is missing or empty (a fresh demo), False if an earlier demo made it.
    """
    from ifan_tf.training.trainer import is_run_output

    if not os.path.exists(workdir):
        return True
    if not os.path.isdir(workdir):
        raise DemoWorkdirError(f"--workdir {workdir} is not a directory")
    entries = os.listdir(workdir)
    if not entries:
        return True
    if MARKER_FILE not in entries:
        raise DemoWorkdirError(
            f"--workdir {workdir} is not empty and was not made by the demo (no {MARKER_FILE} marker; it holds "
            f"{', '.join(sorted(entries)[:5])}{' ...' if len(entries) > 5 else ''}); the demo only replaces its "
            "own work directory: give a new or empty --workdir")
    demo_output = lambda name: name in DEMO_OUTPUTS or any(  # noqa: E731 (and atomic writes' temporary names)
        name.startswith(f".{output}.") for output in (SUMMARY_FILE, demo_figures.COMPARISON_FILE,
                                                        demo_figures.CURVE_FILE))
    foreign = _foreign_entries(workdir, demo_output)
    train_dir = os.path.join(workdir, "train")
    if os.path.isdir(train_dir):
        foreign += [os.path.join("train", name) for name in _foreign_entries(train_dir, is_run_output)]
    elif os.path.exists(train_dir):
        foreign.append("train")
    if foreign:
        raise DemoWorkdirError(
            f"--workdir {workdir} holds files the demo did not make: {', '.join(foreign)}; the demo would "
            "replace its training run there: move them away or give another --workdir")
    return False


def run(flags, default_config=None):
    """The demo with ``flags.config``, or ``default_config`` (``configs/ifan.py:demo``) when none is given."""
    workdir = flags.workdir or "runs/demo"
    config = flags.config if flags.config is not None else default_config
    if config is None or "demo" not in config:
        raise ModeError("--mode=demo needs the demo configuration (--config=configs/ifan.py:demo)")
    try:
        fresh = check_demo_workdir(workdir)
        with workdir_lock.WorkdirLock(workdir, "demo"):
            if fresh:
                write_json_atomic(os.path.join(workdir, MARKER_FILE), {"made_by": "main.py --mode=demo"})
            return _run_demo(config, workdir)
    except (DemoWorkdirError, workdir_lock.WorkdirInUseError) as error:
        raise ModeError(str(error)) from None


def _run_demo(config, workdir):
    from ifan_tf.evaluation.evaluate import evaluate, format_summary
    from ifan_tf.training.trainer import NonFiniteLossError, train

    train_glob, val_glob = synthesize_demo_data(config.demo, os.path.join(workdir, "data"),
                                                announce=functools.partial(print, flush=True))
    with config.unlocked():
        config.data.train, config.data.val = train_glob, val_glob
    train_dir = os.path.join(workdir, "train")
    if os.path.exists(train_dir):
        check_demo_workdir(workdir)  # nothing foreign arrived meanwhile
        logging.info("replacing the previous demo run in %s", train_dir)
        shutil.rmtree(train_dir)
    print(f"training the demo model for up to {config.train.max_minutes:g} minutes (progress below; "
          f"TensorBoard: tensorboard --logdir {train_dir}/tensorboard)", flush=True)
    try:
        result = train(config, train_dir)
    except NonFiniteLossError as error:
        raise ModeError(f"demo training stopped: {error}", FAILED) from None
    summary = evaluate(result.state.network, [val_glob], output_dir=os.path.join(workdir, "eval"),
                       show_progress=False, description={"demo": True, "step": result.step})

    print("\nheld-out PSNR during training (photographs never seen in training):")
    print(f"{'minutes':>8s} {'step':>7s} {'PSNR':>8s} {'input':>8s} {'gain':>7s} {'SSIM':>7s}")
    for record in result.validations:
        print(f"{record['train_minutes']:8.1f} {record['step']:7d} {record['psnr']:8.3f} {record['input_psnr']:8.3f} "
              f"{record['psnr'] - record['input_psnr']:+7.3f} {record['ssim']:7.4f}")
    print(f"\nfinal model after {result.step} steps ({result.stop_reason}), on {summary['count']} held-out scenes:")
    for line in format_summary(summary):
        print("  " + line)
    figures = write_figures(result.state.network, val_glob, result.validations, workdir)
    document = {"step": result.step, "stop_reason": result.stop_reason, "curve": result.validations,
                "final": summary, "model_dir": os.path.join(train_dir, "model"), "figures": figures}
    write_json_atomic(os.path.join(workdir, SUMMARY_FILE), document)
    print(f"\nmodel directory: {os.path.join(train_dir, 'model')}; summary: {os.path.join(workdir, SUMMARY_FILE)}")
    print(f"before/after on held-out scenes: {figures['comparison']}")
    if figures["curve"]:
        print(f"held-out PSNR curve: {figures['curve']}")
    return OK


def write_figures(network, val_glob, curve, workdir):
    """The comparison of the first ``FIGURE_SCENES`` held-out scenes and the curve plot (``demo_figures``)."""
    from ifan_tf.data.pipeline import make_eval_dataset
    from ifan_tf.evaluation.evaluate import make_deblur_fn
    from ifan_tf.evaluation.metrics import crop_to_multiple
    from ifan_tf.model.ifan import SIZE_MULTIPLE

    deblur = make_deblur_fn(network)
    records = []
    for record in make_eval_dataset([val_glob]).take(FIGURE_SCENES).as_numpy_iterator():
        records.append({key: crop_to_multiple(record[key], SIZE_MULTIPLE) if key in ("image", "left", "right",
                                                                                      "target") else value
                        for key, value in record.items()})
    return demo_figures.write_demo_figures(
        workdir, lambda record: deblur(record["image"], record.get("right"), record.get("left")), records, curve)
