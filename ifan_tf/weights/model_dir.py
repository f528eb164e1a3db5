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

from ifan_tf.io.atomic_write import make_staging_directory, publish_directory, recover_directory
from ifan_tf.model import precision as precision_lib
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.weights.reference_checkpoint import (CheckpointError, check_and_assign, export_state, read_state_dict,
                                                  reference_shapes)

FORMAT_NAME = "ifan_tf.model_dir"  # the format's name in config.json, not a module path: keep it
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
NETWORK_FILE = "network.npz"
REBLUR_FILE = "reblur.npz"
MAX_CONFIG_BYTES = 1 << 20


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
    """Reads and validates ``DIR/config.json`` -> (ModelConfig, metadata), before any network is built.

    The document must be a JSON object of at most ``MAX_CONFIG_BYTES`` with exactly the keys
    ``format``, ``version``, ``model`` and optionally ``metadata`` (an object); ``model`` is
    checked field by field (types, ranges, unknown fields) by ``ModelConfig.from_dict``. Raises
    ``CheckpointError`` naming the file.
    """
    config_path = os.path.join(os.fspath(path), CONFIG_FILE)
    if not os.path.exists(path):  # a publish killed mid-way may have left it aside: put it back
        recover_directory(path)
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{path}: not a model directory (no {CONFIG_FILE}); make one with "
                              "`python -m ifan_tf.weights.convert` or `main.py --mode=train`")
    try:
        with open(config_path, "rb") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{config_path}: larger than {MAX_CONFIG_BYTES} bytes, not a model config")
        document = json.loads(text.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{config_path}: unreadable model config ({error})") from error
    if not isinstance(document, dict):
        raise CheckpointError(f"{config_path}: must hold a JSON object, holds {type(document).__name__}")
    if document.get("format") != FORMAT_NAME or document.get("version") != FORMAT_VERSION or \
            isinstance(document.get("version"), bool):
        raise CheckpointError(f"{config_path}: not an {FORMAT_NAME} v{FORMAT_VERSION} config")
    unknown = sorted(set(document) - {"format", "version", "model", "metadata"})
    if unknown:
        raise CheckpointError(f"{config_path}: unknown fields {unknown}")
    model, metadata = document.get("model"), document.get("metadata", {})
    if not isinstance(model, dict) or not isinstance(metadata, dict):
        raise CheckpointError(f"{config_path}: 'model' and 'metadata' must be JSON objects")
    try:
        return ModelConfig.from_dict(model), metadata
    except ValueError as error:
        raise CheckpointError(f"{config_path}: {error}") from error


def _load_weights(module, weights_path):
    """Reads ``weights_path`` after comparing its names and shapes with ``module``, then assigns it."""
    state = read_state_dict(weights_path, expected_shapes=reference_shapes(module))
    check_and_assign(module, state, weights_path)


def load_model_dir(path, with_reblur=False, dtype=None, config_overrides=None):
    """Loads a model directory.

    ``config.json`` is validated before any network is built, and each weights file's names and
    shapes (from its headers) are compared with the built network before its data is read.

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
    reblur_path = os.path.join(path, REBLUR_FILE)
    if with_reblur and not os.path.isfile(reblur_path):
        raise CheckpointError(f"{path}: has no reblurring network weights ({REBLUR_FILE})")
    network = build_ifan(config, dtype=dtype)
    _load_weights(network, os.path.join(path, NETWORK_FILE))
    reblur_network = None
    if with_reblur:
        reblur_network = build_reblurring_network(config, dtype=dtype)
        _load_weights(reblur_network, reblur_path)
    return LoadedModel(network=network, config=config, reblur_network=reblur_network, metadata=metadata)


def load_network(path, precision="float32", config_overrides=None, with_reblur=False):
    """The deblurring network (``IFAN``, config on ``.config``) of a model directory at ``precision``.

    ``precision``: a name of ``ifan_tf.model.precision`` ("float32", "bfloat16": bfloat16 compute with
    float32 weights, or "float16"). The one loader for predict, eval and export. With
    ``with_reblur`` the whole ``LoadedModel`` (network, RBN, config, metadata) is returned.
    """
    loaded = load_model_dir(path, with_reblur=with_reblur, dtype=precision_lib.keras_policy(precision),
                            config_overrides=config_overrides)
    return loaded if with_reblur else loaded.network
