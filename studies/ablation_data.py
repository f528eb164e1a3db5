"""The ablation study's data: one training folder per set of realism switches, and two fixed test sets.

Training data: ``STUDY_DIR/data`` for the synthesis without realism switches, ``data-segments``,
``data-highlights``, ``data-noise``, ``data-jpeg`` (and combinations, e.g. ``data-segments-jpeg``)
for the switches a variant (or ``--overrides``) turns on; a switch at another value than the
study's ``SWITCHES_ON`` carries it in the name (``data-highlights2``). Each folder is made (or
reused when its settings match) by ``ifan_tf.synthesis.demo_data.synthesize_demo_data``.

Test sets, the same for every variant (whatever its switches and the switch overrides):
``plain`` is the validation split of ``data`` (no switches); ``realistic`` is the same validation
photographs, scene count, seed, size and blur with all four switches on (``SWITCHES_ON``), made
once into ``STUDY_DIR/test-realistic`` (validation split only). A test set is described by a
JSON ``spec`` (files relative to the study folder and its synthesis settings) that each run's
result keeps, so a changed test set is evaluated again.

Nothing here imports TensorFlow at import time (the workers pin their CPU first).
"""

import functools
import os

from absl import logging

from ifan_tf.synthesis.demo_data import SWITCHES_OFF, made_with, switches_of, synthesize_demo_data

#: The study's "on" values (the switch variants and the realistic test set).
SWITCHES_ON = {"layout": "segments", "highlight_gain": 4.0, "noise_level": 0.02, "jpeg_quality": 90}
#: Folder-name part of each switch.
SWITCH_NAMES = {"layout": "segments", "highlight_gain": "highlights", "noise_level": "noise", "jpeg_quality": "jpeg"}
TEST_SETS = ("plain", "realistic")
REALISTIC_DIR = "test-realistic"


def data_folder_name(switches):
    """``"data"`` without switches on, else ``"data-segments-highlights..."`` (see module docstring)."""
    parts = []
    for name, off in SWITCHES_OFF.items():
        value = switches.get(name, off)
        if value == off:
            continue
        parts.append(SWITCH_NAMES[name] if value == SWITCHES_ON[name] else f"{SWITCH_NAMES[name]}{value:g}")
    return "-".join(["data"] + parts)


def _demo_with(demo_config, switches):
    """A copy of ``demo_config`` (ConfigDict) with ``switches`` set."""
    import ml_collections

    return ml_collections.ConfigDict(dict(demo_config.to_dict(), **switches))


def test_set_specs(demo_config):
    """``{"plain": spec, "realistic": spec}`` of a run's ``config.demo`` (its switches play no part)."""
    common = {"photos": list(demo_config.val_photos), "scenes": int(demo_config.val_scenes),
              "image_size": int(demo_config.image_size), "max_coc": float(demo_config.max_coc) or None,
              "seed": int(demo_config.seed)}
    return {"plain": dict(common, files=f"{data_folder_name(SWITCHES_OFF)}/val-*.tfrecord",
                          switches=dict(SWITCHES_OFF)),
            "realistic": dict(common, files=f"{REALISTIC_DIR}/val-*.tfrecord", switches=dict(SWITCHES_ON))}


def _synthesize_test_set(directory, spec):
    """Makes (or reuses, when made with the same settings) a validation-only test set in ``directory``."""
    from ifan_tf.synthesis.synthetic_dataset import synthesize_dataset

    size = spec["image_size"]
    request = dict(splits={"val": spec["scenes"]}, photos={"val": spec["photos"]}, image_size=(size, size),
                   max_coc=spec["max_coc"], seed=spec["seed"], **spec["switches"])
    if made_with(directory, request):
        logging.info("reusing the test set in %s", directory)
        return
    print(f"synthesizing the test set {directory}: {spec['scenes']} scenes of {size}x{size} from "
          f"{', '.join(spec['photos'])} with {spec['switches']}", flush=True)
    synthesize_dataset(directory, overwrite=True, show_progress=False, **request)


def _check_made(directory):
    from ifan_tf.data import dataset_writer

    if not os.path.isfile(os.path.join(directory, dataset_writer.SUMMARY_FILE)):
        raise ValueError(f"{directory}: no synthetic data ({dataset_writer.SUMMARY_FILE} missing); the parent "
                         "process synthesizes it before starting the workers")


def prepare_study_data(study_dir, demo_configs, synthesize=True):
    """The training globs and the test sets of a study, synthesized first unless ``synthesize`` is False.

    Args:
      study_dir: the study folder.
      demo_configs: every run's ``config.demo`` (their non-switch fields must agree).
      synthesize: False only checks that the folders exist (the workers: the parent made them).
    Returns:
      ``(train_globs, test_sets)``: ``{folder name: train glob}`` and
      ``{test set name: (glob, spec)}``.
    Raises:
      ValueError: the runs disagree on the test sets, or (``synthesize=False``) a folder is missing.
    """
    specs = test_set_specs(demo_configs[0])
    if any(test_set_specs(demo) != specs for demo in demo_configs):
        raise ValueError("the runs' demo settings give different test sets (only the realism switches may differ)")
    by_folder = {}
    for demo in demo_configs:
        by_folder.setdefault(data_folder_name(switches_of(demo)), demo)
    plain_folder = data_folder_name(SWITCHES_OFF)
    by_folder.setdefault(plain_folder, _demo_with(demo_configs[0], SWITCHES_OFF))  # the plain test set's folder
    train_globs = {}
    for folder, demo in by_folder.items():
        directory = os.path.join(study_dir, folder)
        if synthesize:
            synthesize_demo_data(demo, directory, announce=functools.partial(print, flush=True))
        else:
            _check_made(directory)
        train_globs[folder] = os.path.join(directory, "train-*.tfrecord")
    realistic_dir = os.path.join(study_dir, REALISTIC_DIR)
    if synthesize:
        _synthesize_test_set(realistic_dir, specs["realistic"])
    else:
        _check_made(realistic_dir)
    test_sets = {name: (os.path.join(study_dir, spec["files"]), spec) for name, spec in specs.items()}
    return train_globs, test_sets
