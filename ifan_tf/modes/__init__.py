"""The command lines of ``main.py``: one module per ``--mode``, each exposing ``run(FLAGS)``.

Modules: ``train``, ``eval``, ``export`` (TF Serving SavedModel, or LiteRT with ``--format=litert``),
``serving_config``, ``predict`` (a model directory, or a LiteRT model with ``--model``), ``web``,
``demo`` (and ``demo_figures``, its figures). ``run`` reads the absl ``FLAGS`` object or any
namespace with the same attributes; the demo also takes its default configuration from
``main.py`` (``configs/ifan.py:demo``: the library does not import ``configs``).

May import: ifan_tf.io, ifan_tf.model, ifan_tf.weights, ifan_tf.data, ifan_tf.synthesis,
ifan_tf.evaluation, ifan_tf.inference, ifan_tf.training, ifan_tf.litert, ifan_tf.serving, ifan_tf.web.
Nothing else in ifan_tf imports the modes.

Errors, the same in every mode: a mode that cannot do what it was asked raises
``ModeError(message, exit_code)``; ``run_mode`` (what ``main.py`` calls) prints
``error: <message>`` on stderr, without a traceback, and returns the exit code. main.py's own flag
errors (an unknown flag, a bad value, no ``--mode``) are printed the same way with code 2.

Exit codes:
  0  ``OK``: done.
  1  ``FAILED``: the run started and did not finish well: a training stopped on non-finite losses;
     predict or eval could not do some images or shards (each named on stderr; the others are
     written and scored).
  2  ``USAGE``: nothing was done: a missing or bad flag, an input or model that cannot be read or
     used, an output that exists without ``--overwrite``, a work directory in use or not the
     demo's, a port in use.
"""

import importlib
import sys

OK, FAILED, USAGE = 0, 1, 2


class ModeError(Exception):
    """A user error of a mode: ``run_mode`` prints ``error: <message>`` and returns ``exit_code``."""

    def __init__(self, message, exit_code=USAGE):
        super().__init__(message)
        self.exit_code = exit_code


def report_error(error):
    """Prints ``error: <message>`` of a ``ModeError`` on stderr; returns its exit code."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    return error.exit_code


def run_mode(name, flags, **arguments):
    """Runs ``ifan_tf.modes.<name>.run(flags, **arguments)``; returns its exit code (see module docstring)."""
    module = importlib.import_module(f"{__name__}.{name}")
    try:
        return module.run(flags, **arguments)
    except ModeError as error:
        return report_error(error)


def flag_given(flags, name):
    """The value of flag ``name`` if it was set on the command line (absl) or is not None (namespace), else None."""
    try:
        present = flags[name].present  # absl FlagValues
    except (TypeError, KeyError, AttributeError):
        return getattr(flags, name, None)
    return getattr(flags, name) if present else None
