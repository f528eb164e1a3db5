"""The reblurring network (RBN, paper Sec. 3.3), used only for the reblurring loss in training.

It predicts a second filter map from the deblurring filter map and applies it with an IAC of
``N_r`` iterations to the 1/8-scale sharp image S: ``SB = IAC(S, RBF(filters)) + S``, which
should reproduce the 1/8-scale defocused input.
"""

import keras
import tensorflow as tf

from ifan_tf.model.blocks import Head, build_once
from ifan_tf.model.config import ConfiguredModel, ModelConfig
from ifan_tf.model.filter_map import LinearFilterMap
from ifan_tf.model.iac import IterativeAdaptiveConvolution


@keras.saving.register_keras_serializable(package="ifan_tf")
class ReblurringNetwork(ConfiguredModel):
    """RBN: ``call(sharp_down, filters)`` -> reblurred ``[B, h, w, 3]`` float32 (unclipped).

    Args (call):
      sharp_down: ``[B, h, w, 3]`` float, the sharp image at 1/8 scale (nearest sampling), in [0, 1].
      filters: ``[B, h, w, D]`` the deblurring network's predicted filter map, or that map as a
        ``LinearFilterMap`` (the training outputs' ``"filter_map"``): the same numbers up to
        summation order, without materialising the map (the RBN's first conv then costs ~1/100).
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = ModelConfig() if config is None else (
            config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config))
        cfg = self.config
        self.filter_network = Head(cfg.feature_channels, cfg.reblur_depth, cfg.kernel_size, cfg.res_num,
                                   dtype=self.dtype_policy, name="RBF")
        self.iac = IterativeAdaptiveConvolution(cfg.reblur_iterations, 3, cfg.reblur_filter_size, mode=cfg.iac_mode,
                                                act_last=False, dtype=self.dtype_policy, name="iac")

    def build(self, sharp_down_shape, filters_shape=None):
        depth = self.config.filter_depth
        shape = tuple(sharp_down_shape[:-1]) + (depth,)
        build_once(self.filter_network, shape)
        build_once(self.iac, tuple(sharp_down_shape), tuple(sharp_down_shape[:-1]) + (self.config.reblur_depth,))

    def compute_output_shape(self, sharp_down_shape, filters_shape=None):
        return tuple(sharp_down_shape)

    def call_on_filter_map(self, sharp_down, filter_map):
        """``call(sharp_down, filter_map.dense())`` without materialising the filter map.

        ``filter_map`` is the ``LinearFilterMap`` of the deblurring network's training outputs
        (``"filter_map"``). Same output as ``call`` up to float32 summation order; the RBN's first
        conv (D = 15,232 input channels) becomes a conv with 128 input channels.
        """
        if not isinstance(filter_map, LinearFilterMap):
            raise TypeError(f"call_on_filter_map needs a LinearFilterMap, got {type(filter_map).__name__}")
        if not self.built:
            self.build(tuple(sharp_down.shape))
        return self._reblur(sharp_down, self.filter_network.call_on_filter_map(filter_map))

    def call(self, sharp_down, filters):
        return self._reblur(sharp_down, self.filter_network(filters))

    def _reblur(self, sharp_down, reblur_filters):
        return tf.cast(self.iac(sharp_down, reblur_filters), tf.float32) + tf.cast(sharp_down, tf.float32)

    def reference_weights(self):
        """``[(reference_name, variable, layout)]`` in the reference's names (``RBF.*``)."""
        return self.filter_network.reference_weights("RBF")


def build_reblurring_network(config=None, dtype=None):
    """Creates the RBN for ``config`` with its weights built (``ReblurringNetwork.build``)."""
    network = ReblurringNetwork(config, dtype=dtype)
    network.build((None, None, None, 3), (None, None, None, network.config.filter_depth))
    return network
