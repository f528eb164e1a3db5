"""The IFAN deblurring network (paper Fig. 2; spec "Deblurring network"), NHWC.

Sub-blocks are named after the paper: feature extractor, filter encoder, disparity map
estimator (DME), filter predictor, IAC and reconstructor. Their weights carry the reference
PyTorch names (see ``reference_weights``).
"""

import keras
import tensorflow as tf

from ifan_tf.model.blocks import Conv, Head, ReferenceSequential, ResBlock, SavesNestedLayers, UpConv, build_once
from ifan_tf.model.config import ConfiguredModel, ModelConfig
from ifan_tf.model.iac import IterativeAdaptiveConvolution

SIZE_MULTIPLE = 8  # three stride-2 levels
FILTER_PREDICTOR_GAIN = 1.5  # Glorot gain of the filter predictor F (reference init)


class Encoder(SavesNestedLayers, keras.layers.Layer):
    """Four-level conv encoder: the feature extractor (``conv*``) or the filter encoder (``kconv*``).

    Input ``[B, H, W, 3 or 6]`` float in [0, 1]. Returns the 1/8-scale features
    ``[B, H/8, W/8, 4*width]`` and the pyramid ``(f1, f2, f3)`` at 1, 1/2 and 1/4 scale.
    """

    def __init__(self, width, kernel_size, name_prefix, **kwargs):
        super().__init__(**kwargs)
        self.name_prefix = name_prefix
        level_widths = (width, 2 * width, 4 * width, 4 * width)
        self.levels = []
        for level, level_width in enumerate(level_widths, start=1):
            self.levels.append([
                Conv(level_width, kernel_size, stride=2 if (level > 1 and j == 1) else 1,
                     dtype=self.dtype_policy, name=f"{name_prefix}{level}_{j}")
                for j in (1, 2, 3)
            ])

    def build(self, input_shape):
        shape = tuple(input_shape)
        for convs in self.levels:
            for conv in convs:
                build_once(conv, shape)
                shape = conv.compute_output_shape(shape)

    def nested_layers(self):
        return [conv for convs in self.levels for conv in convs]

    def call(self, x):
        pyramid = []
        for convs in self.levels:
            for conv in convs:
                x = conv(x)
            pyramid.append(x)
        return x, tuple(pyramid[:3])

    def reference_weights(self):
        return [w for convs in self.levels for conv in convs for w in conv.reference_weights(conv.name)]


class FilterPredictor(keras.layers.Layer):
    """Predicts the IAC filter map from e_F and the disparity map (``conv_DME``, ``conv4_4``, ``F``).

    ``call(e_F, disparity)`` with e_F ``[B, h, w, c]`` and disparity ``[B, h, w, 1 or c]`` returns the
    filter map ``[B, h, w, D]``. What the IAC and the RBN read instead (no 15k-channel tensor):
    ``hidden(e_F, disparity)`` stops before F's final 1x1 conv, and ``filter_map(hidden)`` is the
    map kept factored (a ``LinearFilterMap``) that computes the filters of one IAC iteration at a
    time; ``project(hidden)`` is the dense map.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        c, ks, dtype = config.feature_channels, config.kernel_size, self.dtype_policy
        self.conv_dme = Conv(c, 3, dtype=dtype, name="conv_DME")
        self.conv4_4 = Head(c, c, ks, config.res_num, out_activation=True, dtype=dtype, name="conv4_4")
        self.predictor = Head(c, config.filter_depth, ks, config.res_num, gain=FILTER_PREDICTOR_GAIN,
                              out_kernel_size=1, dtype=dtype, name="F")

    def build(self, e_f_shape, disparity_shape):
        """Creates every weight from the input shapes ``[B, h, w, c]`` and ``[B, h, w, 1 or c]``."""
        build_once(self.conv_dme, tuple(disparity_shape))
        c = self.conv_dme.filters
        build_once(self.conv4_4, tuple(e_f_shape[:-1]) + (e_f_shape[-1] + c,))
        build_once(self.predictor, tuple(e_f_shape[:-1]) + (c,))

    def compute_output_shape(self, e_f_shape, disparity_shape):
        return self.predictor.compute_output_shape(tuple(e_f_shape[:-1]) + (self.conv_dme.filters,))

    def hidden(self, e_f, disparity):
        """The features entering F's final 1x1 conv, ``[B, h, w, c]`` in the compute dtype."""
        return self.predictor.hidden(self.conv4_4(tf.concat([e_f, self.conv_dme(disparity)], axis=-1)))

    def filter_map(self, hidden):
        """The filter map of ``hidden`` kept factored: a ``LinearFilterMap`` (F's 1x1 conv, not applied).

        ``filter_map(hidden(e_f, d)).dense()`` equals ``call(e_f, d)`` up to summation order.
        """
        return self.predictor.factored_output(hidden)

    def project(self, hidden):
        """The dense filter map ``[B, h, w, D]`` of ``hidden`` (F's final 1x1 conv)."""
        return self.predictor.output(hidden)

    def call(self, e_f, disparity):
        return self.project(self.hidden(e_f, disparity))

    def reference_weights(self):
        return (self.conv_dme.reference_weights("conv_DME") + self.conv4_4.reference_weights("conv4_4")
                + self.predictor.reference_weights("F"))


class Reconstructor(SavesNestedLayers, keras.layers.Layer):
    """Decodes the filtered 1/8-scale features to the residual image (``conv_res`` ... ``out_res``).

    ``call(x, pyramid)`` with x ``[B, h, w, c]`` and the feature extractor's ``(f1, f2, f3)`` returns
    the residual ``[B, H, W, 3]`` (added to the input by the network).
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        w, ks, dtype = config.width, config.kernel_size, self.dtype_policy
        c = config.feature_channels
        self.conv_res = ReferenceSequential(
            [Conv(c, ks, dtype=dtype, name="conv_in"), ResBlock(c, 3, ks, dtype=dtype, name="res"),
             Conv(c, ks, dtype=dtype, name="conv_out")], dtype=dtype, name="conv_res")
        self.up_levels = []
        for level, out_channels in ((3, 4 * w), (2, 2 * w), (1, w)):
            self.up_levels.append((
                UpConv(out_channels, dtype=dtype, name=f"upconv{level}_u"),
                ResBlock(out_channels, 1, ks, dtype=dtype, name=f"upconv{level}_1"),
                ResBlock(out_channels, 1, ks, dtype=dtype, name=f"upconv{level}_2"),
            ))
        self.out_res = Conv(3, ks, dtype=dtype, name="out_res")  # keeps its LeakyReLU (reference)

    def build(self, x_shape, pyramid_shape=None):
        """Creates every weight from the shape ``[B, h, w, c]`` of the 1/8-scale features."""
        build_once(self.conv_res, tuple(x_shape))
        shape = self.conv_res.compute_output_shape(tuple(x_shape))
        for up, res1, res2 in self.up_levels:
            build_once(up, shape)
            shape = up.compute_output_shape(shape)
            build_once(res1, shape)
            build_once(res2, shape)
        build_once(self.out_res, shape)

    def nested_layers(self):
        return [block for blocks in self.up_levels for block in blocks]

    def call(self, x, pyramid):
        x = self.conv_res(x)
        for (up, res1, res2), skip in zip(self.up_levels, reversed(pyramid)):
            x = res2(res1(up(x) + skip))
        return self.out_res(x)

    def reference_weights(self):
        names = self.conv_res.reference_weights("conv_res")
        for blocks in self.up_levels:
            for block in blocks:
                names += block.reference_weights(block.name)
        return names + self.out_res.reference_weights("out_res")


@keras.saving.register_keras_serializable(package="ifan_tf")
class IFAN(ConfiguredModel):
    """IFAN deblurring network.

    Call with ``inputs`` = the defocused image C ``[B, H, W, 3]`` float32 in [0, 1] (H, W multiples
    of 8), or a dict ``{"image": C, "right": R, "left": L}`` (R/L ``[B, H, W, 3]`` in [0, 1]; needed by
    the dual-pixel-input variant, and R by the disparity loss in training).

    - ``training=False``: returns the deblurred image ``[B, H, W, 3]`` float32 clipped to [0, 1].
    - ``training=True``: returns a dict with ``"deblurred"`` (unclipped), ``"filters"`` (the filter map
      ``[B, H/8, W/8, D]``), ``"disparity"`` (DME output for the input) and, when R is given and the
      DME is supervised, ``"disparity_right"`` (DME on R, ``[B, H/8, W/8, 1]``, pixels at 1/8 scale).
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = ModelConfig() if config is None else (
            config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config))
        cfg, dtype = self.config, self.dtype_policy
        c, ks = cfg.feature_channels, cfg.kernel_size
        self.feature_extractor = Encoder(cfg.width, ks, "conv", dtype=dtype, name="feature_extractor")
        self.filter_encoder = Encoder(cfg.width, ks, "kconv", dtype=dtype, name="filter_encoder")
        self.disparity_estimator = Head(c, cfg.disparity_channels, ks, cfg.res_num, dtype=dtype, name="DME")
        self.filter_predictor = FilterPredictor(cfg, dtype=dtype, name="filter_predictor")
        if cfg.use_iac:
            self.iac = IterativeAdaptiveConvolution(cfg.num_iterations, c, cfg.filter_size, mode=cfg.iac_mode,
                                                    dtype=dtype, name="iac")
        else:  # Table 1 baseline: residual blocks on concat[e_B, F] instead of the IAC
            self.iac_replacement = ReferenceSequential(
                [Conv(c, ks, dtype=dtype, name="conv_in"), ResBlock(c, cfg.res_num, ks, dtype=dtype, name="res1"),
                 ResBlock(c, cfg.res_num, ks, dtype=dtype, name="res2")], dtype=dtype, name="iac_replacement")
        self.reconstructor = Reconstructor(cfg, dtype=dtype, name="reconstructor")

    def build(self, inputs_shape):
        """Creates every weight. ``inputs_shape``: the image's ``[B, H, W, 3]`` (or a dict of shapes)."""
        if isinstance(inputs_shape, dict):
            inputs_shape = inputs_shape["image"]
        cfg, batch = self.config, tuple(inputs_shape)[0]
        build_once(self.feature_extractor, (batch, None, None, 3))
        build_once(self.filter_encoder, (batch, None, None, 6 if cfg.dual_pixel_input else 3))
        features = (batch, None, None, cfg.feature_channels)
        build_once(self.disparity_estimator, features)
        build_once(self.filter_predictor, features, (batch, None, None, cfg.disparity_channels))
        if cfg.use_iac:
            build_once(self.iac, features, (batch, None, None, cfg.filter_depth))
        else:
            build_once(self.iac_replacement, (batch, None, None, cfg.feature_channels + cfg.filter_depth))
        build_once(self.reconstructor, features)

    # -- inputs ---------------------------------------------------------------------------
    def _unpack(self, inputs):
        if isinstance(inputs, dict):
            image, right, left = inputs["image"], inputs.get("right"), inputs.get("left")
        else:
            image, right, left = inputs, None, None
        image = tf.convert_to_tensor(image)
        if image.shape.rank != 4 or (image.shape[-1] is not None and image.shape[-1] != 3):
            raise ValueError(f"IFAN expects images of shape [B, H, W, 3], got {image.shape}")
        for axis, label in ((1, "height"), (2, "width")):
            size = image.shape[axis]
            if size is not None and size % SIZE_MULTIPLE:
                raise ValueError(f"IFAN needs the image {label} to be a multiple of {SIZE_MULTIPLE}, got {size} "
                                 f"(shape {image.shape}); pad or crop it first (the exported model pads)")
        if image.shape[1] is None or image.shape[2] is None:
            shape = tf.shape(image)
            tf.debugging.assert_equal(shape[1:3] % SIZE_MULTIPLE, 0,
                                      message=f"IFAN needs image height and width to be multiples of {SIZE_MULTIPLE}")
        if self.config.dual_pixel_input and (right is None or left is None):
            raise ValueError("the dual-pixel-input IFAN needs {'image', 'right', 'left'} inputs")
        return image, right, left

    def _encoder_input(self, image, right, left):
        if self.config.dual_pixel_input:
            return tf.concat([right, left], axis=-1)
        return image

    # -- forward --------------------------------------------------------------------------
    def _infer(self, image, right, left):
        """``call(training=False)`` with the IAC: the same numbers, ordered for a low peak memory.

        Control dependencies make the graph executor run the filter branch (filter encoder, DME,
        filter predictor) before the feature extractor, so only one full-resolution encoder is
        alive at a time, and the IAC computes each iteration's filters only when the previous
        iteration is done (``streamed``). In eager mode the order is the program order anyway.
        """
        e_f, _ = self.filter_encoder(self._encoder_input(image, right, left))
        hidden = self.filter_predictor.hidden(e_f, self.disparity_estimator(e_f))
        with tf.control_dependencies([hidden]):
            image_after_filter_branch = tf.identity(image)
        e_b, pyramid = self.feature_extractor(image_after_filter_branch)
        features = self.iac.call_factored(e_b, self.filter_predictor.filter_map(hidden), streamed=True)
        residual = self.reconstructor(features, pyramid)
        return tf.clip_by_value(tf.cast(residual, tf.float32) + tf.cast(image, tf.float32), 0.0, 1.0)

    def call(self, inputs, training=False):
        image, right, left = self._unpack(inputs)
        if not training and self.config.use_iac:
            return self._infer(image, right, left)
        e_b, pyramid = self.feature_extractor(image)
        disparity_right = None
        if training and self.config.use_dme and right is not None and not self.config.dual_pixel_input:
            # The disparity branch on C and on R as one batch of 2B: the same per-example numbers as
            # two passes, with half the ops and larger (faster) convolutions in forward and backward.
            e_f_both, _ = self.filter_encoder(tf.concat([image, tf.cast(right, image.dtype)], axis=0))
            e_f, _ = tf.split(e_f_both, 2, axis=0)
            disparity, disparity_right = tf.split(self.disparity_estimator(e_f_both), 2, axis=0)
        else:
            e_f, _ = self.filter_encoder(self._encoder_input(image, right, left))
            disparity = self.disparity_estimator(e_f)
        outputs = {"disparity": disparity}
        if not self.config.use_iac:
            filters = self.filter_predictor(e_f, disparity)
            features = self.iac_replacement(tf.concat([e_b, tf.cast(filters, e_b.dtype)], axis=-1))
        else:
            # The IAC reads its filters straight from F's hidden features (no 15k-channel map, no
            # strided channel slices); the dense map is computed only if a caller uses it (graph
            # mode prunes it otherwise).
            hidden = self.filter_predictor.hidden(e_f, disparity)
            filter_map = self.filter_predictor.filter_map(hidden)
            features = self.iac.call_factored(e_b, filter_map)
            filters = self.filter_predictor.project(hidden)
            outputs["filter_map"] = filter_map
        residual = self.reconstructor(features, pyramid)
        deblurred = tf.cast(residual, tf.float32) + tf.cast(image, tf.float32)
        if not training:
            return tf.clip_by_value(deblurred, 0.0, 1.0)

        outputs.update(deblurred=deblurred, filters=filters)
        if self.config.use_dme and self.config.dual_pixel_input:
            outputs["disparity_right"] = disparity  # the encoder already sees concat[R, L]
        elif disparity_right is not None:
            outputs["disparity_right"] = disparity_right
        return outputs

    # -- weights --------------------------------------------------------------------------
    def reference_weights(self):
        """``[(reference_name, variable, layout)]`` for every weight, in the reference's names."""
        names = self.feature_extractor.reference_weights() + self.filter_encoder.reference_weights()
        names += self.disparity_estimator.reference_weights("DME") + self.filter_predictor.reference_weights()
        if not self.config.use_iac:
            names += self.iac_replacement.reference_weights("iac_replacement")
        return names + self.reconstructor.reference_weights()


def build_ifan(config=None, dtype=None):
    """Creates an IFAN model with its weights built (``IFAN.build``, no forward pass)."""
    model = IFAN(config, dtype=dtype)
    model.build((None, None, None, 3))
    return model
