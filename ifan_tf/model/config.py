"""The architecture hyper-parameters of IFAN, as one validated, JSON-serialisable record."""

import collections.abc
import dataclasses
import numbers

import keras
import numpy as np

from ifan_tf.model.iac import IAC_MODES, filter_map_depth

PAPER_NUM_ITERATIONS = (8, 17, 26, 35, 44)  # paper Table 4; 17 is the final model
# Accepted [low, high] of each integer field: generous around the paper's model (width 32, N 17, k 3),
# small enough that a hostile config.json cannot make the network allocate gigabytes.
FIELD_RANGES = {"width": (1, 256), "num_iterations": (1, 64), "filter_size": (1, 15), "kernel_size": (1, 11),
                "res_num": (1, 16), "reblur_iterations": (1, 64), "reblur_filter_size": (1, 15)}
ODD_FIELDS = ("filter_size", "kernel_size", "reblur_filter_size")
MAX_FILTER_DEPTH = 65536  # the paper's final model: 15232; its largest (N = 44): 39424


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """IFAN architecture settings (defaults: the paper's final model).

    Attributes:
      width: ``ch1``, channels of the first level; levels 2-4 have 2x, 4x, 4x (32 -> 128 at 1/8).
      num_iterations: ``N``, IAC iterations (paper: 8/17/26/35/44; final model 17).
      filter_size: ``k``, size of each 1-D IAC filter.
      kernel_size: size of the ordinary convolutions (3).
      res_num: residual units per ``ResBlock`` in the DME, filter predictor and RBN (2).
      iac_mode: ``"separable"`` (intended layer, default) or ``"checkpoint"`` (released weights).
      dual_pixel_input: filter encoder takes concat[R, L] (6 channels), the supplementary variant.
      use_iac: filter predictor + IAC (False: the Table 1 baseline, residual blocks on
        concat[e_B, F] with F ending in ``c`` channels).
      use_dme: disparity supervision; False makes the DME an unsupervised block ending in ``c``
        channels (Table 1) and drops the disparity loss.
      use_rbn: the reblurring network and its loss (needs ``use_iac``).
      reblur_iterations: ``N_r`` of the RBN's IAC (17).
      reblur_filter_size: ``k_r`` of the RBN's IAC (3).
    """

    width: int = 32
    num_iterations: int = 17
    filter_size: int = 3
    kernel_size: int = 3
    res_num: int = 2
    iac_mode: str = "separable"
    dual_pixel_input: bool = False
    use_iac: bool = True
    use_dme: bool = True
    use_rbn: bool = True
    reblur_iterations: int = 17
    reblur_filter_size: int = 3

    def __post_init__(self):
        problems = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in (int, "int"):
                low, high = FIELD_RANGES[field.name]
                if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
                    problems.append(f"{field.name} must be an integer, got {value!r:.40}")
                elif not low <= value <= high:
                    problems.append(f"{field.name} must be in [{low}, {high}], got {value}")
                elif field.name in ODD_FIELDS and value % 2 == 0:
                    problems.append(f"{field.name} must be odd, got {value}")
                else:
                    object.__setattr__(self, field.name, int(value))
            elif field.type in (bool, "bool"):
                if isinstance(value, (bool, np.bool_)):
                    object.__setattr__(self, field.name, bool(value))
                else:
                    problems.append(f"{field.name} must be true or false, got {value!r:.40}")
        if not isinstance(self.iac_mode, str) or self.iac_mode not in IAC_MODES:
            problems.append(f"iac_mode must be one of {IAC_MODES}, got {self.iac_mode!r:.40}")
        if self.use_rbn is True and self.use_iac is False:
            problems.append("use_rbn needs use_iac: the RBN consumes the predicted IAC filters")
        if not problems and self.filter_depth > MAX_FILTER_DEPTH:
            problems.append(f"the IAC filter map depth N * 4 * width * (2 * filter_size + 1) = {self.filter_depth} "
                            f"exceeds {MAX_FILTER_DEPTH}")
        if problems:
            raise ValueError("invalid IFAN model config: " + "; ".join(problems))

    @property
    def feature_channels(self):
        """``c`` = ch4, channels of the 1/8-scale features the IAC filters (128 in the paper)."""
        return 4 * self.width

    @property
    def filter_depth(self):
        """``D``, depth of the predicted filter map (15232 for N=17, c=128, k=3)."""
        if not self.use_iac:
            return self.feature_channels
        return filter_map_depth(self.num_iterations, self.feature_channels, self.filter_size)

    @property
    def reblur_depth(self):
        """Depth of the RBN's output filter map, ``N_r * 3 * (2 k_r + 1)`` (357)."""
        return filter_map_depth(self.reblur_iterations, 3, self.reblur_filter_size)

    @property
    def disparity_channels(self):
        """Output channels of the DME: 1 (a disparity map) when supervised, else ``c``."""
        return 1 if self.use_dme else self.feature_channels

    def replace(self, **changes):
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Builds a config from a mapping (e.g. JSON or a ConfigDict); unknown keys are an error."""
        if not isinstance(values, collections.abc.Mapping):
            raise ValueError(f"an IFAN model config must be a mapping of fields, got {type(values).__name__}")
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown IFAN model config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)


class ConfiguredModel(keras.Model):
    """A Keras model built from a ``ModelConfig`` (IFAN, the RBN): ``get_config``/``from_config``.

    The config is stored as its dict, the dtype policy as a serialized Keras object, so
    ``keras.saving`` round-trips the model at its precision.
    """

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dtype = config.pop("dtype", None)
        if dtype is not None:
            config["dtype"] = keras.saving.deserialize_keras_object(dtype)
        return cls(**config)
