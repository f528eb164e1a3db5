"""The reblurring network (RBN, paper Sec. 3.3), used only for the reblurring loss in training.

It predicts a second filter map from the deblurring filter map and applies it with an IAC of
``N_r`` iterations to the 1/8-scale sharp image S: ``SB = IAC(S, RBF(filters)) + S``, which
should reproduce the 1/8-scale defocused input.
"""

import keras
import tensorflow as tf

from ifan_tf.model.config import ModelConfig
from ifan_tf.model.iac import IterativeAdaptiveConvolution
from ifan_tf.model.ifan import _head


@keras.saving.register_keras_serializable(package="ifan_tf")
class ReblurringNetwork(keras.Model):
    """RBN: ``call(sharp_down, filters)`` -> reblurred ``[B, h, w, 3]`` float32 (unclipped).

    Args (call):
      sharp_down: ``[B, h, w, 3]`` float, the sharp image at 1/8 scale (nearest sampling), in [0, 1].
      filters: ``[B, h, w, D]`` the deblurring network's predicted filter map.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = ModelConfig() if config is None else (
            config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config))
        cfg = self.config
        self.filter_network = _head("RBF", cfg.feature_channels, cfg.reblur_depth, cfg.kernel_size, cfg.res_num,
                                    self.dtype_policy)
        self.iac = IterativeAdaptiveConvolution(cfg.reblur_iterations, 3, cfg.reblur_filter_size, mode=cfg.iac_mode,
                                                act_last=False, dtype=self.dtype_policy, name="iac")

    def call(self, sharp_down, filters):
        reblur_filters = self.filter_network(filters)
        return tf.cast(self.iac(sharp_down, reblur_filters), tf.float32) + tf.cast(sharp_down, tf.float32)

    def reference_weights(self):
        """``[(reference_name, variable, layout)]`` in the reference's names (``RBF.*``)."""
        return self.filter_network.reference_weights("RBF")

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name}


def build_reblurring_network(config=None, dtype=None):
    """Creates the RBN for ``config`` and builds its weights."""
    network = ReblurringNetwork(config, dtype=dtype)
    cfg = network.config
    network(tf.zeros([1, 2, 2, 3]), tf.zeros([1, 2, 2, cfg.filter_depth]))
    return network
