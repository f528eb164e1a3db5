"""The model directory: the one on-disk format every mode of ``main.py`` loads (``--model_dir``).

Layout::

    DIR/config.json     {"format": "ifan_tf.model_dir", "version": 1, "model": {ModelConfig}, "metadata": {...}}
    DIR/network.npz     deblurring network weights, reference names and layouts
    DIR/reblur.npz      reblurring network weights (optional; training only)

Weights are stored under the reference PyTorch names, so a model directory is also a state_dict
the official code can load. Directories are written to a temporary sibling and renamed when
complete, so a crash never leaves a half-written model behind.
"""

import dataclasses
import json
import os
import shutil

import numpy as np
from absl import logging

from ifan_tf.atomic_write import make_staging_directory, publish_directory, recover_directory
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.reference_checkpoint import CheckpointError, check_and_assign, export_state, read_state_dict

FORMAT_NAME = "ifan_tf.model_dir"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
NETWORK_FILE = "network.npz"
REBLUR_FILE = "reblur.npz"


@dataclasses.dataclass
class LoadedModel:
    """What ``load_model_dir`` returns: the built networks, their config and free-form metadata."""

    network: object
    config: ModelConfig
    reblur_network: object = None
    metadata: dict = dataclasses.field(default_factory=dict)


def write_model_dir(path, config, network_state, reblur_state=None, metadata=None, overwrite=False):
    """Writes a model directory atomically from reference-named state dicts (numpy arrays)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
    staging = make_staging_directory(path)
    try:
        document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": config.to_dict(),
                    "metadata": dict(metadata or {})}
        with open(os.path.join(staging, CONFIG_FILE), "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
        np.savez(os.path.join(staging, NETWORK_FILE), **network_state)
        if reblur_state:
            np.savez(os.path.join(staging, REBLUR_FILE), **reblur_state)
        publish_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logging.info("wrote model directory %s", path)
    return path


def save_model_dir(path, network, reblur_network=None, metadata=None, overwrite=False):
    """Saves built Keras networks (``IFAN`` and optionally ``ReblurringNetwork``) as a model directory."""
    reblur_state = export_state(reblur_network) if reblur_network is not None else None
    return write_model_dir(path, network.config, export_state(network), reblur_state, metadata, overwrite)


def read_model_config(path):
    """Reads ``DIR/config.json`` -> (ModelConfig, metadata); clear errors for anything else."""
    config_path = os.path.join(os.fspath(path), CONFIG_FILE)
    if not os.path.exists(path):  # a publish killed mid-way may have left it aside: put it back
        recover_directory(path)
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{path}: not a model directory (no {CONFIG_FILE}); make one with "
                              "`python -m ifan_tf.convert` or `main.py --mode=train`")
    try:
        with open(config_path) as handle:
            document = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: unreadable model config ({error})") from error
    if document.get("format") != FORMAT_NAME or document.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: not an {FORMAT_NAME} v{FORMAT_VERSION} config")
    return ModelConfig.from_dict(document["model"]), document.get("metadata", {})


def load_model_dir(path, with_reblur=False, dtype=None, config_overrides=None):
    """Loads a model directory.

    Args:
      path: the directory.
      with_reblur: also build and load the RBN (error if the directory has none).
      dtype: Keras dtype policy for the networks, e.g. ``"mixed_bfloat16"``; None = float32.
      config_overrides: dict of ``ModelConfig`` fields to change, e.g. ``{"iac_mode": "separable"}``.
    Returns:
      ``LoadedModel`` with built networks.
    """
    config, metadata = read_model_config(path)
    if config_overrides:
        config = config.replace(**config_overrides)
    network = build_ifan(config, dtype=dtype)
    check_and_assign(network, read_state_dict(os.path.join(path, NETWORK_FILE)), os.path.join(path, NETWORK_FILE))
    reblur_network = None
    if with_reblur:
        reblur_path = os.path.join(path, REBLUR_FILE)
        if not os.path.isfile(reblur_path):
            raise CheckpointError(f"{path}: has no reblurring network weights ({REBLUR_FILE})")
        reblur_network = build_reblurring_network(config, dtype=dtype)
        check_and_assign(reblur_network, read_state_dict(reblur_path), reblur_path)
    return LoadedModel(network=network, config=config, reblur_network=reblur_network, metadata=metadata)
