"""Exports to one base folder: concurrent exports get distinct versions; a kill -9 never breaks a version."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from serving_test_images import TINY
from ifan_tf.model.ifan import build_ifan
from ifan_tf.serving.export import export_network
from ifan_tf.serving.export_versions import existing_versions, reserve_version

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Exports a tiny model to argv[1]; waits for the file argv[2] first (a start line shared by several
# processes); argv[3] names a point where the process kills itself with SIGKILL ("none" = no kill).
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import tensorflow as tf
    from serving_test_images import TINY
    from ifan_tf.io import atomic_write
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving import export_versions
    from ifan_tf.serving.export import export_network

    base, start, kill_at, version = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if kill_at == "while_saving":
        save = tf.saved_model.save
        tf.saved_model.save = lambda *a, **k: (save(*a, **k), die())
    elif kill_at == "after_publish":
        publish = export_versions.VersionReservation.publish
        export_versions.VersionReservation.publish = lambda *a, **k: (publish(*a, **k), die())
    elif kill_at == "after_exchange":
        atomic_write.shutil.rmtree = lambda *a, **k: die()
    network = build_ifan(TINY)
    while not os.path.exists(start):
        time.sleep(0.01)
    print("PATH " + export_network(network, base, version=None if version == "next" else int(version),
                                   overwrite=version != "next"), flush=True)
""")


def _run(tmp_path, base, kill_at="none", version="next", start=None):
    script = tmp_path / "export_script.py"
    script.write_text(SCRIPT)
    start = start or base
    return subprocess.Popen([sys.executable, str(script), str(base), str(start), kill_at, version],
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                 "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests", "serving")])},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _usable(version_dir):
    info = json.loads((version_dir / "assets.extra" / "ifan_tf.json").read_text())
    return (version_dir / "saved_model.pb").is_file() and info["version"] == int(version_dir.name)


def test_reservations_are_exclusive_across_threads(tmp_path):
    barrier, reservations = threading.Barrier(8), []

    def reserve():
        barrier.wait()
        reservations.append(reserve_version(str(tmp_path)))

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.version for r in reservations) == list(range(1, 9))
    with pytest.raises(FileExistsError, match="another process"):
        reserve_version(str(tmp_path), 3)  # held
    for reservation in reservations:
        reservation.release()
    assert os.listdir(tmp_path) == []
    reserve_version(str(tmp_path), 3).release()  # free again


def test_two_concurrent_exports_get_two_versions(tmp_path):
    base, start = tmp_path / "exports", tmp_path / "start"
    processes = [_run(tmp_path, base, start=start) for _ in range(2)]
    start.write_text("go")  # both processes wait for this, then export at the same moment
    outputs = [process.communicate(timeout=600) for process in processes]
    assert all(p.returncode == 0 for p in processes), [err[-2000:] for _, err in outputs]
    paths = sorted(line[5:] for out, _ in outputs for line in out.splitlines() if line.startswith("PATH "))
    assert [os.path.basename(p) for p in paths] == ["1", "2"]
    assert sorted(os.listdir(base)) == ["1", "2"] and all(_usable(base / v) for v in ("1", "2"))


@pytest.mark.slow
def test_kill_9_while_publishing_leaves_a_usable_version_and_the_next_export_cleans_up(tmp_path):
    base = tmp_path / "exports"
    network = build_ifan(TINY)
    export_network(network, base)  # version 1
    for kill_at, version, expected in [("while_saving", "next", ["1"]), ("after_publish", "next", ["1", "2"]),
                                       ("after_exchange", "1", ["1", "2"])]:
        process = _run(tmp_path, base, kill_at, version)
        _, err = process.communicate(timeout=600)
        assert process.returncode == -9, (kill_at, err[-2000:])
        assert [str(v) for v in existing_versions(base)] == expected, (kill_at, os.listdir(base))
        assert all(_usable(base / v) for v in expected), kill_at
        assert any(name.startswith(".tmp-") for name in os.listdir(base)), kill_at  # what the crash left
    (base / "1" / "assets.extra" / "ifan_tf.json").read_text()
    third = export_network(network, base)
    assert os.path.basename(third) == "3"
    assert sorted(os.listdir(base)) == ["1", "2", "3"]  # every leftover of the dead exports is gone
