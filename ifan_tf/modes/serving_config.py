"""``main.py --mode=serving_config``: TF Serving's operator files next to exports (``ifan_tf.serving.server_config``).

    python main.py --mode=serving_config --export_dir=serving/ifan --version_labels=stable=3,canary=4
    python main.py --mode=serving_config --export_dir=serving/ifan,serving/ifan_small \\
        --model_name=ifan,ifan_small --version_policy=all --version_labels=ifan:stable=3,ifan_small:stable=1

``--versions`` and ``--version_labels`` items may start with ``MODEL:`` (required with several
models). The files go to ``--output_dir`` (default: the folder holding the export folders), which
the server is expected to see as ``--server_model_root`` (default ``/models``, the Docker image's;
'' writes host paths for a ``tensorflow_model_server`` on the same machine). Exports or flags
that cannot be served exit with 2 (``ifan_tf.modes``).
"""

import os

from ifan_tf.modes import OK, ModeError
from ifan_tf.serving import server_config


def _split_model(item, names, flag):
    """``"MODEL:VALUE"`` or ``"VALUE"`` -> ``(model name, value)``."""
    model, separator, value = item.rpartition(":")
    if not separator:
        if len(names) > 1:
            raise ValueError(f"{flag}: {item!r}: with several models, prefix it with the model name "
                             f"({' or '.join(f'{name}:{item}' for name in names)})")
        return names[0], item
    if model not in names:
        raise ValueError(f"{flag}: {item!r}: no model named {model!r} (models: {', '.join(names)})")
    return model, value


def _version_number(text, where):
    try:
        version = int(text)
    except ValueError:
        version = 0
    if version < 1:
        raise ValueError(f"{where}: {text!r} is not a version number (a positive integer)")
    return version


def parse_versions(items, names):
    """``--versions`` items -> ``{model: [version, ...]}``."""
    versions = {name: [] for name in names}
    for item in items or ():
        model, value = _split_model(item, names, "--versions")
        versions[model].append(_version_number(value, f"--versions={item}"))
    return versions


def parse_labels(items, names):
    """``--version_labels`` items ``[MODEL:]LABEL=VERSION`` -> ``{model: {label: version}}``."""
    labels = {name: {} for name in names}
    for item in items or ():
        model, value = _split_model(item, names, "--version_labels")
        label, separator, version = value.partition("=")
        if not separator or not label:
            raise ValueError(f"--version_labels: {item!r} is not LABEL=VERSION (e.g. stable=3)")
        version = _version_number(version, f"--version_labels={item}")
        if labels[model].get(label, version) != version:
            raise ValueError(f"--version_labels: label {label} of model {model} is given two versions "
                             f"({labels[model][label]} and {version})")
        labels[model][label] = version
    return labels


def run(flags):
    if not flags.export_dir:
        raise ModeError("--mode=serving_config needs --export_dir (export folders, comma-separated)")
    export_dirs = [os.path.abspath(path) for path in flags.export_dir.split(",") if path]
    names = (flags.model_name.split(",") if flags.model_name
             else [os.path.basename(os.path.normpath(path)) for path in export_dirs])
    if len(names) != len(export_dirs):
        raise ModeError(f"--model_name names {len(names)} models but --export_dir has {len(export_dirs)} folders")
    output_dir = flags.output_dir or os.path.commonpath([os.path.dirname(path) for path in export_dirs])
    try:
        versions, labels = parse_versions(flags.versions, names), parse_labels(flags.version_labels, names)
        models = [server_config.plan_model(name, path, flags.version_policy, versions[name], labels[name],
                                           flags.num_latest_versions) for name, path in zip(names, export_dirs)]
        paths = server_config.write_operator_files(
            models, output_dir, flags.server_model_root, flags.overwrite, max_batch_size=flags.batching_max_batch_size,
            batch_timeout_micros=flags.batch_timeout_micros, num_batch_threads=flags.num_batch_threads,
            max_enqueued_batches=flags.max_enqueued_batches)
    except (ValueError, OSError, ImportError) as error:
        raise ModeError(str(error)) from None
    for model in models:
        labels_text = ", ".join(f"{label}={version}" for label, version in sorted(model.labels.items()))
        print(f"model {model.name}: {model.export_dir}, version policy {model.policy}, serving versions "
              f"{', '.join(map(str, model.served_versions()))}" + (f", labels {labels_text}" if labels_text else ""))
    print("wrote " + ", ".join(paths.values()))
    root = flags.server_model_root or output_dir
    options = (f"--model_config_file={root}/{server_config.MODELS_CONFIG} "
               f"--monitoring_config_file={root}/{server_config.MONITORING_FILE}"
               + (" --allow_version_labels_for_unavailable_models=true" if any(m.labels for m in models) else ""))
    if flags.server_model_root:
        command = (f"docker run --rm -p 8500:8500 -p 8501:8501 --mount type=bind,source={output_dir},"
                   f"target={root} tensorflow/serving:2.21.0 {options}")
    else:
        command = f"tensorflow_model_server --port=8500 --rest_api_port=8501 {options}"
    print(f"serve them (CPU; docs/serving.md has GPU and batching): {command}")
    return OK
