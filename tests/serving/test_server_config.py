"""``main.py --mode=serving_config``: models.config parsed with TF Serving's own ModelServerConfig proto,
batching_parameters.txt and monitoring.config parsed strictly, values derived from the exports, errors."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from ifan_tf.modes import run_mode
from ifan_tf.serving import server_config, server_protos

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def info_template(exported):
    """The ``ifan_tf.json`` of a real export (the session's tiny model)."""
    return json.loads((pathlib.Path(exported[2]) / "assets.extra" / "ifan_tf.json").read_text())


def _fake_version(export_dir, version, template, **limits):
    """``export_dir/<version>`` with an ``ifan_tf.json`` like a real export's (limits overridden)."""
    info = json.loads(json.dumps(template))
    info["limits"].update(limits)
    info["version"] = version
    folder = pathlib.Path(export_dir) / str(version) / "assets.extra"
    folder.mkdir(parents=True)
    (folder / "ifan_tf.json").write_text(json.dumps(info))
    return folder.parent


def _flags(export_dir, **overrides):
    values = dict(export_dir=str(export_dir), model_name=None, output_dir=None, version_policy=None, versions=None,
                  num_latest_versions=1, version_labels=None, batching_max_batch_size=None,
                  batch_timeout_micros=2000, num_batch_threads=2, max_enqueued_batches=None,
                  server_model_root="/models", overwrite=False)
    values.update(overrides)
    return types.SimpleNamespace(**values)


def _read(folder):
    models = text_format.Parse((folder / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    batching = server_protos.parse_text((folder / "batching_parameters.txt").read_text(),
                                        server_protos.batching_parameters_class())
    monitoring = server_protos.parse_text((folder / "monitoring.config").read_text(),
                                          server_protos.monitoring_config_class())
    return models, batching, monitoring


def test_labels_canary_and_stable_with_a_real_export(exported, tmp_path, capsys):
    serving = tmp_path / "serving"
    shutil.copytree(exported[1], serving / "ifan")  # the real export: version 1, default limits
    (serving / "ifan" / "1").rename(serving / "ifan" / "3")
    _fake_version(serving / "ifan", 4, json.loads((serving / "ifan" / "3" / "assets.extra" / "ifan_tf.json")
                                                  .read_text()), max_batch=6)
    assert run_mode("serving_config", _flags(serving / "ifan", version_labels=["stable=3", "canary=4"])) == 0
    out = capsys.readouterr().out
    assert "serving versions 3, 4, labels canary=4, stable=3" in out
    assert "--allow_version_labels_for_unavailable_models=true" in out and "tensorflow/serving:2.21.0" in out
    models, batching, monitoring = _read(serving)
    (config,) = models.model_config_list.config
    assert (config.name, config.base_path, config.model_platform) == ("ifan", "/models/ifan", "tensorflow")
    assert config.model_version_policy.WhichOneof("policy_choice") == "specific"
    assert list(config.model_version_policy.specific.versions) == [3, 4]
    assert dict(config.version_labels) == {"stable": 3, "canary": 4}
    assert batching.max_batch_size.value == 6  # the smallest max_batch of the served versions (16 and 6)
    assert batching.batch_timeout_micros.value == 2000
    assert batching.num_batch_threads.value == 2 and batching.max_enqueued_batches.value == 4
    assert batching.pad_variable_length_inputs is False and list(batching.allowed_batch_sizes) == []
    assert "pad_variable_length_inputs: false" in (serving / "batching_parameters.txt").read_text()
    assert monitoring.prometheus_config.enable and monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    assert sorted(os.listdir(serving)) == ["batching_parameters.txt", "ifan", "models.config", "monitoring.config"]


def test_several_models_policies_and_host_paths(info_template, tmp_path):
    for version in (1, 2, 3):
        _fake_version(tmp_path / "exports" / "big", version, info_template, max_batch=8)
    _fake_version(tmp_path / "exports" / "small", 5, info_template, max_batch=3)
    flags = _flags(f"{tmp_path}/exports/big,{tmp_path}/exports/small", model_name="ifan,ifan_small",
                   version_policy="all", version_labels=["ifan:stable=2", "ifan_small:stable=5"],
                   server_model_root="", output_dir=str(tmp_path / "config"), batching_max_batch_size=3,
                   batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=9)
    assert run_mode("serving_config", flags) == 0
    models, batching, _ = _read(tmp_path / "config")
    big, small = models.model_config_list.config
    assert (big.name, big.base_path) == ("ifan", str(tmp_path / "exports" / "big"))  # host paths
    assert (small.name, small.base_path) == ("ifan_small", str(tmp_path / "exports" / "small"))
    assert big.model_version_policy.WhichOneof("policy_choice") == "all"
    assert dict(big.version_labels) == {"stable": 2} and dict(small.version_labels) == {"stable": 5}
    assert (batching.max_batch_size.value, batching.batch_timeout_micros.value, batching.num_batch_threads.value,
            batching.max_enqueued_batches.value) == (3, 0, 1, 9)

    latest = _flags(tmp_path / "exports" / "big", num_latest_versions=2, overwrite=True)
    assert run_mode("serving_config", latest) == 0  # written next to the export folder, seen as /models/big
    models, batching, _ = _read(tmp_path / "exports")
    (config,) = models.model_config_list.config
    assert (config.name, config.base_path) == ("big", "/models/big")
    assert config.model_version_policy.latest.num_versions == 2 and batching.max_batch_size.value == 8


@pytest.mark.parametrize("case, message", [
    ("label_without_version",
     "version label canary=9 of model ifan: {export} has no version 9 (exported versions: 3, 4)"),
    ("batch_above_max_batch", "batching max_batch_size=7 is above max_batch=6 of {export}/4/assets.extra/ifan_tf.json"),
    ("no_versions", "{empty}: no exported versions"),
    ("no_info_file", "{bare}/2/assets.extra/ifan_tf.json: missing: version 2 was not exported by ifan_tf"),
    ("labels_with_latest", "version labels need the specific or all version policy"),
    ("label_not_served", "version label canary=4 of model ifan: version 4 is not served (served versions: 3)"),
    ("bad_label", "version label 'can-ary' of model ifan: TF Serving accepts [A-Za-z0-9_]+ only"),
    ("prefix_needed", "--version_labels: 'stable=3': with several models, prefix it with the model name"),
    ("outside_output_dir", "is not inside the output folder"),
    ("not_a_number", "--versions=three: 'three' is not a version number"),
])
def test_bad_input_is_an_error_naming_the_file_and_value(info_template, tmp_path, capsys, case, message):
    export, empty, bare = tmp_path / "ifan", tmp_path / "empty", tmp_path / "bare"
    _fake_version(export, 3, info_template, max_batch=16)
    _fake_version(export, 4, info_template, max_batch=6)
    (empty / "assets.extra").mkdir(parents=True)  # a folder, but no numbered version in it
    (bare / "2" / "variables").mkdir(parents=True)  # a version without ifan_tf.json
    flags = {
        "label_without_version": _flags(export, version_labels=["stable=3", "canary=9"]),
        "batch_above_max_batch": _flags(export, version_policy="all", batching_max_batch_size=7),
        "no_versions": _flags(empty),
        "no_info_file": _flags(bare),
        "labels_with_latest": _flags(export, version_policy="latest", version_labels=["stable=4"]),
        "label_not_served": _flags(export, versions=["3"], version_labels=["stable=3", "canary=4"]),
        "bad_label": _flags(export, version_labels=["can-ary=3"]),
        "prefix_needed": _flags(f"{export},{bare}", version_labels=["stable=3"]),
        "outside_output_dir": _flags(export, output_dir=str(tmp_path / "elsewhere")),
        "not_a_number": _flags(export, versions=["three"]),
    }[case]
    assert run_mode("serving_config", flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(export=export, empty=empty, bare=bare) in err, err
    assert not any(p.name.endswith((".config", ".txt")) for p in tmp_path.rglob("*"))  # nothing written


def test_existing_files_need_overwrite(info_template, tmp_path, capsys):
    _fake_version(tmp_path / "ifan", 1, info_template)
    assert run_mode("serving_config", _flags(tmp_path / "ifan")) == 0
    before = (tmp_path / "models.config").read_text()
    assert run_mode("serving_config", _flags(tmp_path / "ifan", version_policy="all")) == 2
    assert "already exist" in capsys.readouterr().err and (tmp_path / "models.config").read_text() == before
    assert run_mode("serving_config", _flags(tmp_path / "ifan", version_policy="all", overwrite=True)) == 0
    assert "all {" in (tmp_path / "models.config").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batching_parameters.txt", "ifan", "models.config",
                                                          "monitoring.config"]  # no temporary files left


def test_batching_and_monitoring_schemas_read_tf_servings_documented_examples():
    # The examples of TF Serving's g3doc/serving_config.md, verbatim.
    batching = server_protos.parse_text("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
                                        "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\n",
                                        server_protos.batching_parameters_class())
    assert batching.max_batch_size.value == 128 and batching.HasField("batch_timeout_micros")
    monitoring = server_protos.parse_text('prometheus_config: {\n  enable: true,\n  path: "/monitoring/prometheus/'
                                          'metrics"\n}\n', server_protos.monitoring_config_class())
    assert monitoring.prometheus_config.enable
    for text, cls in [("max_batch_sise { value: 1 }", server_protos.batching_parameters_class()),
                      ("num_batch_threads: 2", server_protos.batching_parameters_class()),  # a wrapper, not an int
                      ("prometheus_config { enabled: true }", server_protos.monitoring_config_class())]:
        with pytest.raises(text_format.ParseError):
            server_protos.parse_text(text, cls)


def test_batching_ranges(info_template, tmp_path):
    _fake_version(tmp_path / "ifan", 1, info_template, max_batch=4)
    model = server_config.plan_model("ifan", tmp_path / "ifan")
    for keyword, value in [("max_batch_size", 0), ("batch_timeout_micros", -1), ("num_batch_threads", 0),
                           ("max_enqueued_batches", 0)]:
        with pytest.raises(ValueError, match=keyword):
            server_config.batching_parameters([model], **{keyword: value})
    message, (limit, info_path) = server_config.batching_parameters([model], max_batch_size=4)
    assert message.max_batch_size.value == limit == 4 and info_path.endswith("1/assets.extra/ifan_tf.json")


def test_command_line(info_template, tmp_path):
    _fake_version(tmp_path / "ifan", 2, info_template, max_batch=5)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    command = [sys.executable, "main.py", "--mode=serving_config", f"--export_dir={tmp_path / 'ifan'}"]
    good = subprocess.run(command + ["--version_labels=stable=2"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert good.returncode == 0, good.stderr[-2000:]
    assert _read(tmp_path)[1].max_batch_size.value == 5
    bad = subprocess.run(command + ["--batching_max_batch_size=9", "--overwrite"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert f"error: batching max_batch_size=9 is above max_batch=5 of {tmp_path}/ifan/2/assets.extra/ifan_tf.json" \
        in bad.stderr
