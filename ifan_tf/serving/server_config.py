"""Operator files for TF Serving next to the exports (``main.py --mode=serving_config``).

Three text-format protobuf files, written atomically (``ifan_tf.io.atomic_write``) into one folder
that also holds the exports, so one bind mount gives the server all of them (docs/serving.md):

- ``models.config`` (``--model_config_file``, a ``ModelServerConfig``): one entry per model:
  name, ``base_path`` as the server sees it, ``model_platform: "tensorflow"``, the version policy
  (``latest { num_versions }``, ``all {}`` or ``specific { versions }``) and version labels.
- ``batching_parameters.txt`` (``--enable_batching --batching_parameters_file``, a
  ``BatchingParameters``): ``max_batch_size`` is at most the smallest ``max_batch`` of the served
  versions (a larger merged batch would fail inside the graph with INVALID_ARGUMENT);
  ``pad_variable_length_inputs: false`` (padding would feed the network constant borders and
  return padded outputs); no ``allowed_batch_sizes`` (padding a batch up runs copies of an image).
- ``monitoring.config`` (``--monitoring_config_file``, a ``MonitoringConfig``): Prometheus metrics
  at ``/monitoring/prometheus/metrics`` on the REST port.

The facts come from each version's ``assets.extra/ifan_tf.json`` (written by the export). Bad
input raises ``ValueError`` naming the file or folder and the value: an export folder without
versions, a version without ``ifan_tf.json``, a label naming a version that is not exported or not
served, a batch size above an export's ``max_batch``. Labels must match ``[A-Za-z0-9_]+`` (TF
Serving's rule); with labels the policy must be ``specific`` or ``all`` (with ``latest``, a new
export would unload the labelled version).
"""

import dataclasses
import json
import os
import posixpath
import re

from absl import logging

from ifan_tf.io.atomic_write import atomic_write_bytes
from ifan_tf.serving import server_protos
from ifan_tf.serving.export_versions import existing_versions
from ifan_tf.serving.limits import ServingLimits

MODELS_CONFIG, BATCHING_FILE, MONITORING_FILE = "models.config", "batching_parameters.txt", "monitoring.config"
EXPORT_INFO_FILE = os.path.join("assets.extra", "ifan_tf.json")
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
POLICIES = ("latest", "all", "specific")
DEFAULT_BATCH_TIMEOUT_MICROS = 2000  # negligible next to one network call (>= 100 ms for the paper model)
DEFAULT_NUM_BATCH_THREADS = 2  # one batch in the network (all cores), one decoding/encoding/tiling
_LABEL = re.compile(r"^[A-Za-z0-9_]+$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no "/" or ":" (REST paths /v1/models/NAME:predict)


@dataclasses.dataclass(frozen=True)
class ExportedVersion:
    """One exported version: ``version``, its ``path``, ``info_path`` (ifan_tf.json), ``limits``,
    ``compute_dtype`` and ``model_width`` (channels of the first level) read from that file."""

    version: int
    path: str
    info_path: str
    limits: ServingLimits
    compute_dtype: str
    model_width: int


def read_export(export_dir):
    """``{version: ExportedVersion}`` of the SavedModels under ``export_dir`` (non-empty) or ValueError."""
    export_dir = os.path.abspath(os.fspath(export_dir))
    if not os.path.isdir(export_dir):
        raise ValueError(f"{export_dir}: no such export folder")
    versions = {}
    for version in existing_versions(export_dir):
        path = os.path.join(export_dir, str(version))
        info_path = os.path.join(path, EXPORT_INFO_FILE)
        try:
            with open(info_path, encoding="utf-8") as stream:
                info = json.load(stream)
        except FileNotFoundError:
            raise ValueError(f"{info_path}: missing: version {version} was not exported by ifan_tf "
                             "(main.py --mode=export), so its limits are unknown") from None
        except (OSError, ValueError) as error:
            raise ValueError(f"{info_path}: unreadable export description ({error})") from None
        try:
            limits = ServingLimits(**info["limits"])
            compute_dtype, width = str(info["compute_dtype"]), int(info["model"]["width"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{info_path}: not an ifan_tf export description (bad or missing "
                             f"limits / compute_dtype / model.width: {error!r})") from None
        versions[version] = ExportedVersion(version, path, info_path, limits, compute_dtype, width)
    if not versions:
        raise ValueError(f"{export_dir}: no exported versions (numbered folders such as {export_dir}/1); "
                         "export one with main.py --mode=export")
    return versions


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """A model of ``models.config``: ``name``, ``export_dir``, its ``exports`` (``read_export``),
    ``policy`` (one of ``POLICIES``), ``versions`` (the number of latest versions for ``latest``,
    the versions for ``specific``, () for ``all``) and ``labels`` ``{label: version}``."""

    name: str
    export_dir: str
    exports: dict
    policy: str
    versions: tuple
    labels: dict

    def served_versions(self):
        """The exported versions this policy loads now (sorted)."""
        existing = sorted(self.exports)
        if self.policy == "latest":
            return existing[-self.versions[0]:]
        return existing if self.policy == "all" else sorted(self.versions)


def plan_model(name, export_dir, policy=None, versions=(), labels=None, num_latest=1):
    """Checks one model's settings against its exports; returns a ``ServedModel`` or raises ValueError.

    Args:
      name: the model name clients use (``/v1/models/NAME``).
      export_dir: its export folder (``EXPORT_DIR`` with numbered versions).
      policy: None (``specific`` when ``versions`` or ``labels`` are given, else ``latest``) or one
        of ``POLICIES``.
      versions: version numbers for ``specific`` (default: the labelled ones).
      labels: ``{label: version}``.
      num_latest: how many of the newest versions ``latest`` serves.
    """
    labels = dict(labels or {})
    versions = tuple(sorted(set(int(v) for v in versions)))
    if not _MODEL_NAME.match(name or ""):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '.' and '-' (it is part of the URL)")
    exports = read_export(export_dir)
    export_dir = os.path.abspath(os.fspath(export_dir))
    existing = ", ".join(map(str, sorted(exports)))
    for label, version in labels.items():
        if not _LABEL.match(label):
            raise ValueError(f"version label {label!r} of model {name}: TF Serving accepts [A-Za-z0-9_]+ only")
        if version not in exports:
            raise ValueError(f"version label {label}={version} of model {name}: {export_dir} has no version "
                             f"{version} (exported versions: {existing})")
    policy = policy or ("specific" if versions or labels else "latest")
    if policy not in POLICIES:
        raise ValueError(f"version policy {policy!r}: use one of {', '.join(POLICIES)}")
    if policy != "specific" and versions:
        raise ValueError(f"model {name}: versions {list(versions)} are given but the version policy is {policy} "
                         "(list versions only with the specific policy)")
    if policy == "latest":
        if labels:
            raise ValueError(f"model {name}: version labels need the specific or all version policy; with latest, "
                             "exporting a newer version would unload a labelled one")
        if isinstance(num_latest, bool) or not isinstance(num_latest, int) or num_latest < 1:
            raise ValueError(f"model {name}: the number of latest versions must be a positive integer, "
                             f"got {num_latest!r}")
        versions = (num_latest,)
    elif policy == "specific":
        versions = versions or tuple(sorted(set(labels.values())))
        if not versions:
            raise ValueError(f"model {name}: the specific version policy needs versions or version labels")
        for version in versions:
            if version not in exports:
                raise ValueError(f"model {name}: {export_dir} has no version {version} (exported versions: "
                                 f"{existing})")
        for label, version in labels.items():
            if version not in versions:
                raise ValueError(f"version label {label}={version} of model {name}: version {version} is not "
                                 f"served (served versions: {', '.join(map(str, versions))})")
    return ServedModel(name, export_dir, exports, policy, versions, labels)


def models_config(models, base_paths):
    """The ``ModelServerConfig`` message for ``models`` (``ServedModel``), ``base_paths`` as the server sees them."""
    config = server_protos.model_server_config_class()()
    names = [model.name for model in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ, got {', '.join(names)}")
    for model, base_path in zip(models, base_paths):
        entry = config.model_config_list.config.add(name=model.name, base_path=base_path,
                                                    model_platform="tensorflow")
        if model.policy == "latest":
            entry.model_version_policy.latest.num_versions = model.versions[0]
        elif model.policy == "all":
            entry.model_version_policy.all.SetInParent()
        else:
            entry.model_version_policy.specific.versions.extend(model.versions)
        for label, version in sorted(model.labels.items()):
            entry.version_labels[label] = version
    return config


def _smallest_max_batch(models):
    """``(max_batch, info_path)`` of the served version with the smallest ``max_batch``."""
    served = [model.exports[v] for model in models for v in model.served_versions()]
    smallest = min(served, key=lambda export: export.limits.max_batch)
    return smallest.limits.max_batch, smallest.info_path


def _positive(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def batching_parameters(models, max_batch_size=None, batch_timeout_micros=DEFAULT_BATCH_TIMEOUT_MICROS,
                        num_batch_threads=DEFAULT_NUM_BATCH_THREADS, max_enqueued_batches=None):
    """The ``BatchingParameters`` message (see the module docstring) and the ``max_batch`` it is bound by.

    Args:
      models: every ``ServedModel`` of the server (batching is global to the server).
      max_batch_size: None = the smallest ``max_batch`` of the served versions; more raises ValueError.
      batch_timeout_micros: how long a partial batch waits for more requests (>= 0).
      num_batch_threads: batches run at once (>= 1); each holds one tile's activations.
      max_enqueued_batches: queued batches before requests are refused (UNAVAILABLE); None = 2 per thread.
    Returns:
      ``(message, (max_batch, info_path))``.
    """
    limit, info_path = _smallest_max_batch(models)
    max_batch_size = limit if max_batch_size is None else _positive("batching max_batch_size", max_batch_size)
    if max_batch_size > limit:
        raise ValueError(f"batching max_batch_size={max_batch_size} is above max_batch={limit} of {info_path}: "
                         "a merged batch that large would fail inside the graph with INVALID_ARGUMENT")
    num_batch_threads = _positive("num_batch_threads", num_batch_threads)
    if max_enqueued_batches is None:
        max_enqueued_batches = 2 * num_batch_threads
    message = server_protos.batching_parameters_class()()
    message.max_batch_size.value = max_batch_size
    message.batch_timeout_micros.value = _positive("batch_timeout_micros", batch_timeout_micros, 0)
    message.num_batch_threads.value = num_batch_threads
    message.max_enqueued_batches.value = _positive("max_enqueued_batches", max_enqueued_batches)
    message.pad_variable_length_inputs = False
    return message, (limit, info_path)


def monitoring_config(path=PROMETHEUS_PATH):
    """The ``MonitoringConfig`` message: Prometheus metrics at ``path`` on the REST port."""
    message = server_protos.monitoring_config_class()()
    message.prometheus_config.enable = True
    message.prometheus_config.path = path
    return message


def server_base_path(export_dir, output_dir, server_model_root):
    """``export_dir`` as the server sees it: under ``server_model_root`` (where ``output_dir`` is
    mounted), or the absolute host path when ``server_model_root`` is empty."""
    export_dir, output_dir = os.path.abspath(export_dir), os.path.abspath(output_dir)
    if not server_model_root:
        return export_dir
    relative = os.path.relpath(export_dir, output_dir)
    if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
        raise ValueError(f"{export_dir} is not inside the output folder {output_dir}, which the server sees as "
                         f"{server_model_root}: pass an --output_dir that holds every export folder, or "
                         "--server_model_root='' to write host paths")
    return posixpath.join(server_model_root, *relative.split(os.sep))


def _activation_note(models):
    """A comment line: memory of one tile's activations per batch thread, or None if unknown."""
    from ifan_tf.inference.memory import GB, network_bytes_per_pixel

    try:
        largest = max(network_bytes_per_pixel(e.compute_dtype, e.model_width) * e.limits.tile ** 2
                      for model in models for e in (model.exports[v] for v in model.served_versions()))
    except ValueError:  # a precision the estimate does not cover
        return None
    amount = f"{largest / GB:.2f} GB" if largest >= 0.1 * GB else f"{largest / 2 ** 20:.0f} MB"
    return f"Each batch thread holds one tile's activations: about {amount} (estimate)."


def render_operator_files(models, output_dir, server_model_root="/models", **batching):
    """``{file name: text}`` of the three files for ``models``; ``batching`` as ``batching_parameters``."""
    base_paths = [server_base_path(model.export_dir, output_dir, server_model_root) for model in models]
    served = "; ".join(f"{m.name}: {m.policy} {', '.join(map(str, m.served_versions()))}"
                       + (f" labels {', '.join(f'{k}={v}' for k, v in sorted(m.labels.items()))}" if m.labels else "")
                       for m in models)
    config = models_config(models, base_paths)
    batch, (limit, info_path) = batching_parameters(models, **batching)
    batch_comments = [
        "Written by ifan_tf (main.py --mode=serving_config); see docs/serving.md.",
        "tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE",
        f"max_batch_size <= max_batch={limit} of {info_path} (the smallest of the served versions).",
        "Only requests with equal inputs apart from the batch size are merged: deblur_encoded (string [B]) any,",
        "serving_default only images of the same height and width; with padding off (below), a merged batch",
        "of different sizes fails as a whole, so batch only traffic of one image size on serving_default.",
        "pad_variable_length_inputs: false on purpose: padding changes the results and wastes compute.",
    ]
    note = _activation_note(models)
    texts = {
        MODELS_CONFIG: server_protos.to_text(config, [
            "Written by ifan_tf (main.py --mode=serving_config); see docs/serving.md.",
            f"tensorflow_model_server --model_config_file=THIS_FILE; served: {served}."]
            + (["Labels at start-up need --allow_version_labels_for_unavailable_models=true."]
               if any(m.labels for m in models) else [])),
        BATCHING_FILE: server_protos.to_text(batch, batch_comments + ([note] if note else []))
        + "pad_variable_length_inputs: false\n",
        MONITORING_FILE: server_protos.to_text(monitoring_config(), [
            "Written by ifan_tf (main.py --mode=serving_config); see docs/serving.md.",
            f"tensorflow_model_server --rest_api_port=8501 --monitoring_config_file=THIS_FILE; "
            f"metrics at http://HOST:8501{PROMETHEUS_PATH}"]),
    }
    # The files must parse as the server will parse them (a guard against a broken writer).
    server_protos.parse_text(texts[MODELS_CONFIG], server_protos.model_server_config_class())
    server_protos.parse_text(texts[BATCHING_FILE], server_protos.batching_parameters_class())
    server_protos.parse_text(texts[MONITORING_FILE], server_protos.monitoring_config_class())
    return texts


def write_operator_files(models, output_dir, server_model_root="/models", overwrite=False, **batching):
    """Writes ``models.config``, ``batching_parameters.txt`` and ``monitoring.config`` into ``output_dir``.

    Each file is written atomically; nothing is written when any check fails, or when a file
    exists and ``overwrite`` is False (FileExistsError naming it). Returns ``{file name: path}``.
    """
    output_dir = os.path.abspath(os.fspath(output_dir))
    texts = render_operator_files(models, output_dir, server_model_root, **batching)
    paths = {name: os.path.join(output_dir, name) for name in texts}
    existing = [path for path in paths.values() if os.path.exists(path)]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
                              "(pass --overwrite to replace)")
    os.makedirs(output_dir, exist_ok=True)
    for name, text in texts.items():
        atomic_write_bytes(paths[name], text.encode("utf-8"))
        logging.info("wrote %s", paths[name])
    return paths
