"""Publishing a directory survives kill -9 at every step: the target is always the old or the new one.

A child process publishes a new version of a directory and SIGKILLs itself just before its k-th
filesystem step (rename, swap, delete), for every k; the parent then checks that the target is
complete (old or new), and that the next publish cleans up every leftover. Both the atomic swap
(``renameat2(RENAME_EXCHANGE)``) and the two-rename fallback are tried.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from ifan_tf.io import atomic_write

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent("""
    import os, shutil, signal, sys
    from ifan_tf.io import atomic_write

    target, kill_at, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    steps = [0]

    def step(function):
        def wrapper(*args, **kwargs):
            steps[0] += 1
            if steps[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)
        return wrapper

    if mode == "fallback":
        atomic_write.exchange_paths = lambda first, second: False
    atomic_write.exchange_paths = step(atomic_write.exchange_paths) if mode == "swap" else atomic_write.exchange_paths
    atomic_write.os.rename = step(os.rename)
    atomic_write.shutil.rmtree = step(shutil.rmtree)
    staging = atomic_write.make_staging_directory(target)  # its own cleanup calls are steps too
    for name in ("a.txt", "b.txt"):
        with open(os.path.join(staging, name), "w") as handle:
            handle.write("new " + name)
    atomic_write.publish_directory(staging, target)
    print("steps", steps[0])
""")


def _publish_in_child(target, kill_at, mode):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-c", CHILD, str(target), str(kill_at), mode], env=env,
                          capture_output=True, text=True, timeout=120)


def _contents(target):
    return {name: open(os.path.join(target, name)).read() for name in sorted(os.listdir(target))}


OLD = {"a.txt": "old a.txt", "b.txt": "old b.txt"}
NEW = {"a.txt": "new a.txt", "b.txt": "new b.txt"}


@pytest.mark.parametrize("mode", ["swap", "fallback"])
def test_kill_at_every_step_leaves_old_or_new(tmp_path, mode):
    if mode == "swap" and not atomic_write.exchange_paths(tmp_path, tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here")
    finished = _publish_in_child(tmp_path / "unused", 0, mode)  # count the steps of a complete run
    assert finished.returncode == 0, finished.stderr
    for kill_at in range(1, 8):
        case = tmp_path / f"k{kill_at}"
        target = case / "model"
        target.mkdir(parents=True)
        for name, text in OLD.items():
            (target / name).write_text(text)
        result = _publish_in_child(target, kill_at, mode)
        if result.returncode == 0:
            assert _contents(target) == NEW
            break
        assert result.returncode == -9, result.stderr
        if mode == "swap":  # the target is never missing, not even before recovery
            assert _contents(target) in (OLD, NEW), kill_at
        atomic_write.recover_directory(target)  # what a loader does (model_dir.read_model_config)
        assert _contents(target) in (OLD, NEW), kill_at
        # the next publish cleans up everything the killed one left behind
        staging = atomic_write.make_staging_directory(target)
        (tmp_path / "marker").write_text("x")
        os.rename(tmp_path / "marker", os.path.join(staging, "a.txt"))
        atomic_write.publish_directory(staging, target)
        assert sorted(os.listdir(case)) == ["model"], kill_at
        assert _contents(target) == {"a.txt": "x"}
    else:
        pytest.fail("the publish never completed within 7 steps")


def test_leftovers_of_live_processes_are_kept(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    mine = atomic_write.make_staging_directory(target)  # this process is alive
    dead = tmp_path / ".model.tmp-999999999-abc"
    dead.mkdir()
    assert atomic_write.recover_directory(target) == [str(dead)]
    assert os.path.isdir(mine) and not dead.exists()


def test_missing_target_is_restored_from_the_moved_aside_one(tmp_path):
    aside = tmp_path / ".model.old-999999999-abc"
    aside.mkdir()
    (aside / "config.json").write_text("{}")
    atomic_write.recover_directory(tmp_path / "model")
    assert (tmp_path / "model" / "config.json").read_text() == "{}" and not aside.exists()
