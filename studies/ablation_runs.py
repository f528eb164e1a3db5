"""One run of the ablation study: its folder, whether it is finished, training and evaluation under its lock.

A run folder ``STUDY_DIR/runs/VARIANT-seedS`` holds ``.lock`` (the run lock, held while a process
trains or evaluates the run), ``train/`` (the trainer's work directory), ``eval/TEST_SET/``,
``sittings.jsonl`` (one line per training sitting: steps, stop reason, minutes) and, once trained,
``result.json``: steps, stop reason, minutes, the settings, and ``test_sets``
(name -> spec, count, PSNR/SSIM/MAE and the input's), filled in one test set at a time.
"""

import dataclasses
import json
import os
import time

from absl import logging

from studies.ablation_data import data_folder_name, switches_of
from ifan_tf.io.atomic_write import atomic_write_bytes, write_json_atomic

METRICS = ("psnr", "ssim", "mae")
RESULT_FILE = "result.json"
SITTINGS_FILE = "sittings.jsonl"
RUN_LOCK_PURPOSE = "ablation run"
INTERRUPTING_STOPS = ("SIGINT", "SIGTERM")  # the trainer's stop_reason when a signal stopped it


class StudyStopped(RuntimeError):
    """The study stopped before every run finished (a signal, or failed workers); ``document``: the report."""

    def __init__(self, message, document=None):
        super().__init__(message)
        self.document = document


def run_name(variant, seed):
    return f"{variant}-seed{seed}"


@dataclasses.dataclass
class Run:
    """One (variant, seed) of the study: its config, folder and what a finished result must answer.

    ``request``: ``(settings, num_steps, max_minutes, test set specs)``, the arguments of ``is_finished``.
    """

    variant: str
    seed: int
    config: object
    run_dir: str
    request: tuple

    @property
    def name(self):
        return run_name(self.variant, self.seed)

    @property
    def result_path(self):
        return os.path.join(self.run_dir, RESULT_FILE)


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


def is_trained(result, settings, num_steps, max_minutes):
    """Whether a run's ``result.json`` document says its training answers the current request."""
    if not result or result.get("settings") != settings:
        return False
    return result["steps"] >= num_steps or bool(max_minutes) and result["minutes"] >= max_minutes


def missing_test_sets(result, specs):
    """Names of the test sets in ``specs`` (name -> spec) that ``result`` has no scores of for that spec."""
    scores = (result or {}).get("test_sets") or {}
    return [name for name, spec in specs.items() if (scores.get(name) or {}).get("spec") != spec]


def is_finished(result, settings, num_steps, max_minutes, specs=None):
    """Trained (``is_trained``) and scored on every test set of ``specs`` (None: any test sets)."""
    return is_trained(result, settings, num_steps, max_minutes) and not missing_test_sets(result, specs or {})


def evaluate_test_set(network, file_glob, output_dir, description):
    """``ifan_tf.evaluation.evaluate`` of ``network`` on ``file_glob`` without LPIPS -> its summary."""
    from ifan_tf.evaluation.evaluate import evaluate, skipped_lpips

    return evaluate(network, [file_glob], output_dir=output_dir, show_progress=False, description=description,
                    lpips=skipped_lpips("not computed in the ablation study"))


def evaluate_test_sets(run, document, network, test_sets):
    """Scores ``network`` on the test sets ``document`` lacks; writes ``result.json`` after each one."""
    document.setdefault("test_sets", {})
    for name in missing_test_sets(document, {n: spec for n, (_, spec) in test_sets.items()}):
        file_glob, spec = test_sets[name]
        summary = evaluate_test_set(network, file_glob, os.path.join(run.run_dir, "eval", name),
                                    {"run": run.name, "step": document["steps"], "test_set": name})
        document["test_sets"][name] = {"spec": spec, "count": summary["count"],
                                       **{m: summary["output"][m] for m in METRICS},
                                       **{f"input_{m}": summary["input"][m] for m in METRICS}}
        write_json_atomic(run.result_path, document, allow_nan=False)
    return document


def load_trained_network(run, steps):
    """The network ``train`` saved in ``RUN/train/model`` if it is at ``steps``, else None (logged)."""
    from ifan_tf.weights.model_dir import load_network, read_model_config
    from ifan_tf.weights.reference_checkpoint import CheckpointError

    path = os.path.join(run.run_dir, "train", "model")
    try:
        if read_model_config(path)[1].get("step") == steps:
            return load_network(path, precision=run.config.train.precision)
        logging.warning("%s: not at step %d; the run is resumed instead", path, steps)
    except CheckpointError as error:
        logging.warning("%s; the run is resumed instead", error)
    return None


def train_and_evaluate(run, train_glob, test_sets, max_minutes):
    """Trains (or resumes) one run, writes its ``result.json``, then scores it on every test set.

    Raises:
      StudyStopped: a signal stopped the training (checkpointed; not evaluated).
      NonFiniteLossError: from the trainer.
    """
    from ifan_tf.training import trainer

    config = run.config
    with config.unlocked():
        config.data.train, config.data.val = train_glob, ""
    spent = sum(sitting["minutes"] for sitting in _sittings(run.run_dir))
    if max_minutes:
        with config.unlocked():
            config.train.max_minutes = max(max_minutes - spent, 1e-3)
    start = time.monotonic()
    result = trainer.train(config, os.path.join(run.run_dir, "train"))
    minutes = (time.monotonic() - start) / 60.0
    _append_sitting(run.run_dir, {"step": result.step, "stop_reason": result.stop_reason, "minutes": minutes})
    if result.stop_reason in INTERRUPTING_STOPS:
        raise StudyStopped(f"{run.name}: stopped by {result.stop_reason} at step {result.step} (checkpointed); "
                           "rerun the command to resume")
    document = {"run": run.name, "steps": result.step, "stop_reason": result.stop_reason,
                "minutes": spent + minutes, "settings": run.request[0], "test_sets": {}}
    write_json_atomic(run.result_path, document, allow_nan=False)
    return evaluate_test_sets(run, document, result.state.network, test_sets)


def process_run(run, train_globs, test_sets, max_minutes):
    """Trains and/or evaluates ``run`` as needed, under its run lock.

    Returns:
      "finished" (nothing to do), "busy" (another process holds its lock: skipped), "evaluated"
      (trained earlier, only test sets were missing), "trained", or "non-finite" (left unfinished).
    """
    from ifan_tf.training.trainer import NonFiniteLossError
    from ifan_tf.training.workdir_lock import WorkdirInUseError, WorkdirLock

    if is_finished(read_json(run.result_path), *run.request):
        return "finished"
    try:
        with WorkdirLock(run.run_dir, purpose=RUN_LOCK_PURPOSE):
            result = read_json(run.result_path)  # another process may have finished it meanwhile
            if is_finished(result, *run.request):
                return "finished"
            if is_trained(result, *run.request[:3]):
                network = load_trained_network(run, result["steps"])
                if network is not None:
                    print(f"evaluating {run.name} on {', '.join(missing_test_sets(result, run.request[3]))}",
                          flush=True)
                    evaluate_test_sets(run, result, network, test_sets)
                    return "evaluated"
            train_glob = train_globs[data_folder_name(switches_of(run.config.demo))]
            print(f"training {run.name} ({run.request[1]} steps, data {train_glob}) in {run.run_dir}", flush=True)
            try:
                document = train_and_evaluate(run, train_glob, test_sets, max_minutes)
            except NonFiniteLossError as error:  # the other runs go on; this one stays unfinished
                logging.error("%s: %s", run.run_dir, error)
                print(f"  {run.name}: stopped, non-finite loss (see the log); going on", flush=True)
                return "non-finite"
    except WorkdirInUseError as error:
        logging.info("%s", error)
        print(f"{run.name}: skipped, another process holds its run lock", flush=True)
        return "busy"
    scores = "; ".join(f"{name} PSNR {entry['psnr']:.3f} dB (input {entry['input_psnr']:.3f})"
                       for name, entry in document["test_sets"].items())
    print(f"  {run.name}: {document['steps']} steps, {document['minutes']:.1f} min; {scores}", flush=True)
    return "trained"


def run_pending(runs, train_globs, test_sets, max_minutes, after_run=None):
    """Walks ``runs`` in order, processing each (``process_run``); ``after_run()`` after each one done."""
    statuses = {}
    for run in runs:
        statuses[run.name] = process_run(run, train_globs, test_sets, max_minutes)
        if after_run and statuses[run.name] in ("trained", "evaluated"):
            after_run()
    return statuses
