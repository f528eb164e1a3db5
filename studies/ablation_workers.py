"""``--parallel=N`` of the ablation study: N worker subprocesses, one CPU each, claiming runs by run lock.

The parent (``run_workers``) starts worker ``i`` as ``python -m studies.ablations`` with the
parent's own flags plus ``--worker_index=i --worker_cpu=CPU --worker_parent=PID``; CPU is entry
``i`` of ``sorted(os.sched_getaffinity(0))``. The worker pins itself to that CPU
(``pin_worker``) before TensorFlow is imported, so TensorFlow sizes its thread pools to one core
(it counts the CPUs of the affinity mask; the worker's log gives its ``tf_Compute`` thread
count). Each worker's stdout and stderr go to ``STUDY_DIR/logs/worker-I.log`` (appended). The
workers run in their own sessions: a Ctrl-C in the terminal reaches only the parent, which passes
SIGINT/SIGTERM on to every live worker once per signal (the trainer checkpoints and stops on the
first; a second SIGINT stops it at once). A worker whose parent disappears stops itself the same
way (SIGTERM).

Nothing here imports TensorFlow at import time.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

LOG_DIR = "logs"
#: A worker's exit status when a signal stopped it (its run checkpointed; rerun to resume).
WORKER_EXIT_INTERRUPTED = 3
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def usable_cpus():
    """The CPUs this process may run on, sorted (``os.sched_getaffinity``)."""
    return sorted(os.sched_getaffinity(0))


def check_parallel(parallel):
    """The CPUs of ``parallel`` workers; ValueError if ``parallel`` < 1 or above the usable CPUs."""
    cpus = usable_cpus()
    if parallel < 1:
        raise ValueError(f"--parallel must be at least 1, got {parallel}")
    if parallel > len(cpus):
        raise ValueError(f"--parallel={parallel} asks for more workers than the {len(cpus)} CPUs this process may "
                         f"use (os.sched_getaffinity: {cpus}); one worker per CPU at most")
    return cpus[:parallel]


def pin_worker(cpu):
    """Pins this process to ``cpu``; must run before TensorFlow is imported. Returns a line for the log."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("a worker must pin its CPU before TensorFlow is imported (it sizes its thread pools "
                           "from the affinity mask at import)")
    before = usable_cpus()
    if cpu not in before:
        raise ValueError(f"--worker_cpu={cpu} is not among the usable CPUs {before}")
    os.sched_setaffinity(0, {cpu})
    return f"worker pid {os.getpid()}: pinned to CPU {cpu} (affinity {before} -> {usable_cpus()})"


def _thread_names():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as handle:
                names.append(handle.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


def describe_threads():
    """What TensorFlow made of the pinning (imports TensorFlow, runs one op): a line for the worker's log.

    TensorFlow sizes its intra-op pool (threads named ``tf_Compute``) from the affinity mask:
    one thread when pinned to one CPU, one per CPU otherwise.
    """
    import tensorflow as tf

    tf.linalg.matmul(tf.ones([64, 64]), tf.ones([64, 64])).numpy()  # starts the thread pools
    compute = sum(name == "tf_Compute" for name in _thread_names())
    return (f"usable CPUs {usable_cpus()} (os.cpu_count() {os.cpu_count()} counts the machine); TensorFlow "
            f"intra-op pool: {compute} tf_Compute thread(s) (intra-op setting "
            f"{tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
            f"{tf.config.threading.get_inter_op_parallelism_threads()}; 0: sized from the usable CPUs)")


def watch_parent(parent_pid, poll_seconds=5.0):
    """Sends SIGTERM to this process (a clean stop) once ``parent_pid`` is no longer its parent."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


@dataclasses.dataclass
class Worker:
    index: int
    cpu: int
    process: subprocess.Popen
    log: str


def _tail(path, lines=15):
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 8192))
            return "\n".join(handle.read().decode("utf-8", errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(log unreadable: {error})"


def run_workers(command, cpus, study_dir, progress=None, poll_seconds=5.0):
    """Runs one worker per CPU of ``cpus`` until all have ended; see module docstring.

    Args:
      command: the worker command without the worker flags, e.g.
        ``[sys.executable, "-m", "studies.ablations", *sys.argv[1:]]``.
      cpus: the CPUs, one worker each (``check_parallel``).
      study_dir: the study folder (the logs go to ``STUDY_DIR/logs``).
      progress: called every ``poll_seconds`` while the workers run, and once at the end.
    Returns:
      ``(failures, signals)``: a description of each worker that failed (exit status other than 0,
      or other than the interrupted status when a signal was passed on), and the names of the
      signals passed on.
    """
    log_dir = os.path.join(study_dir, LOG_DIR)
    os.makedirs(log_dir, exist_ok=True)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [_REPO_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    workers, received = [], []

    def forward(signum, frame):
        received.append(signal.Signals(signum).name)
        print(f"{received[-1]} received: passed on to the workers (each checkpoints its run and stops)", flush=True)
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index, cpu in enumerate(cpus):
            log = os.path.join(log_dir, f"worker-{index}.log")
            with open(log, "ab") as handle:
                process = subprocess.Popen(
                    list(command) + [f"--worker_index={index}", f"--worker_cpu={cpu}",
                                     f"--worker_parent={os.getpid()}"],
                    stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, env=environment,
                    start_new_session=True)
            workers.append(Worker(index, cpu, process, log))
            print(f"worker {index}: pid {process.pid} on CPU {cpu}, log {log}", flush=True)
        while any(worker.process.poll() is None for worker in workers):
            if progress:
                progress()
            time.sleep(poll_seconds)
    finally:
        for worker in workers:  # the parent itself failed: stop the workers cleanly, then wait for them
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if progress:
        progress()
    failures = []
    for worker in workers:
        status = worker.process.returncode
        if status == 0 or received and status in (WORKER_EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM):
            continue
        how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
        failures.append(f"worker {worker.index} (CPU {worker.cpu}, pid {worker.process.pid}) failed: {how}; "
                        f"end of its log {worker.log}:\n{_tail(worker.log)}")
    return failures, received
