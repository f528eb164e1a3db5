"""Pipeline options and runners: pure-Python and offline locally, any Beam runner on a cluster.

Beam's default runner name, ``DirectRunner``, is ``SwitchingDirectRunner`` in Beam 2.77: for many
pipelines it first tries the Prism runner, which downloads a Go binary at run time (no network:
a failure, then a fallback, after a delay). So when no ``--runner`` is given, the pipelines here
run on ``FnApiRunner`` (``apache_beam.runners.portability.fn_api_runner.FnApiRunner``), the
pure-Python batch runner that ``SwitchingDirectRunner`` itself falls back to, built the same way
(the pipeline options are handed to its workers). It downloads nothing and honours
``--direct_num_workers`` and ``--direct_running_mode`` (``in_memory``, ``multi_threading``,
``multi_processing``: ``python -m apache_beam.runners.worker.sdk_worker_main`` subprocesses talking
gRPC over loopback). More than one worker without a running mode means ``multi_processing``.

Any explicit ``--runner`` (``DataflowRunner``, ``FlinkRunner``, ``SparkRunner``, ``PortableRunner``,
even ``DirectRunner`` or ``PrismRunner``) is passed to Beam unchanged with all its flags.
"""
from __future__ import annotations

import apache_beam as beam
from absl import logging
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

LOCAL_RUNNER_NAME = "FnApiRunner (pure Python, local)"


def make_options(beam_args: list[str]) -> PipelineOptions:
    """``PipelineOptions`` from Beam's own flags (``--runner``, ``--direct_num_workers``, Dataflow's ...).

    Locally (no ``--runner``), ``--direct_num_workers`` other than 1 without ``--direct_running_mode``
    selects ``multi_processing``.
    """
    options = PipelineOptions(list(beam_args))
    direct = options.view_as(DirectOptions)
    explicit_mode = any(arg.startswith("--direct_running_mode") for arg in beam_args)
    if options.view_as(StandardOptions).runner is None and direct.direct_num_workers != 1 and not explicit_mode:
        direct.direct_running_mode = "multi_processing"
    return options


def local_runner(options: PipelineOptions):
    """The pure-Python ``FnApiRunner``, handed ``options`` for its workers as ``SwitchingDirectRunner`` does."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def describe(options: PipelineOptions) -> str:
    """The runner and its parallelism, for logs and summaries."""
    runner = options.view_as(StandardOptions).runner
    if runner is not None:
        return str(runner)
    direct = options.view_as(DirectOptions)
    return f"{LOCAL_RUNNER_NAME}, {direct.direct_running_mode}, {direct.direct_num_workers} worker(s)"


def new_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A pipeline on the runner ``options`` name, or on ``local_runner`` when they name none."""
    if options.view_as(StandardOptions).runner is None:
        return beam.Pipeline(runner=local_runner(options), options=options)
    return beam.Pipeline(options=options)


def run_to_completion(pipeline: beam.Pipeline):
    """Runs ``pipeline`` and waits; returns the ``PipelineResult``; RuntimeError naming the state if it failed."""
    result = pipeline.run()
    state = result.wait_until_finish()
    if state is not None and state != PipelineState.DONE:
        raise RuntimeError(f"the pipeline ended in state {state}")
    return result


def counters(result, namespace: str) -> dict[str, int]:
    """Counter name -> value in ``namespace`` (committed values where the runner has them, else attempted)."""
    values = {}
    try:
        found = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(namespace))["counters"]
    except (NotImplementedError, AttributeError) as error:
        logging.warning("the runner reports no metrics (%s)", error)
        return values
    for counter in found:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        values[name] = values.get(name, 0) + int(value or 0)
    return values
