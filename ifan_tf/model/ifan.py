"""The IFAN deblurring network (paper Fig. 2; spec "Deblurring network"), NHWC.

Sub-blocks are named after the paper: feature extractor, filter encoder, disparity map
estimator (DME), filter predictor, IAC and reconstructor. Their weights carry the reference
PyTorch names (see ``reference_weights``).
"""

import keras
import tensorflow as tf

from ifan_tf.model.blocks import Conv, ReferenceSequential, ResBlock, UpConv
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.iac import IterativeAdaptiveConvolution

SIZE_MULTIPLE = 8  # three stride-2 levels
FILTER_PREDICTOR_GAIN = 1.5  # Glorot gain of the filter predictor F (reference init)


class Encoder(keras.layers.Layer):
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

    def call(self, x):
        pyramid = []
        for convs in self.levels:
            for conv in convs:
                x = conv(x)
            pyramid.append(x)
        return x, tuple(pyramid[:3])

    def reference_weights(self):
        return [w for convs in self.levels for conv in convs for w in conv.reference_weights(conv.name)]


def _head(name, channels, out_channels, kernel_size, res_num, dtype, gain=1.0, out_kernel_size=None, out_activation=False):
    """conv -> ResBlock(res_num) x2 -> conv: the shape shared by the DME, conv4_4, F and the RBN."""
    return ReferenceSequential(
        [
            Conv(channels, kernel_size, gain=gain, dtype=dtype, name="conv_in"),
            ResBlock(channels, res_num, kernel_size, gain=gain, dtype=dtype, name="res1"),
            ResBlock(channels, res_num, kernel_size, gain=gain, dtype=dtype, name="res2"),
            Conv(out_channels, out_kernel_size or kernel_size, activation=out_activation, gain=gain,
                 dtype=dtype, name="conv_out"),
        ],
        dtype=dtype,
        name=name,
    )


class FilterPredictor(keras.layers.Layer):
    """Predicts the IAC filter map from e_F and the disparity map (``conv_DME``, ``conv4_4``, ``F``).

    ``call(e_F, disparity)`` with e_F ``[B, h, w, c]`` and disparity ``[B, h, w, 1 or c]`` returns the
    filter map ``[B, h, w, D]``. ``hidden(...)`` stops before F's final 1x1 conv (``output_conv``)
    so inference can compute the map one IAC iteration at a time.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        c, ks, dtype = config.feature_channels, config.kernel_size, self.dtype_policy
        self.conv_dme = Conv(c, 3, dtype=dtype, name="conv_DME")
        self.conv4_4 = _head("conv4_4", c, c, ks, config.res_num, dtype, out_activation=True)
        self.predictor = _head("F", c, config.filter_depth, ks, config.res_num, dtype,
                               gain=FILTER_PREDICTOR_GAIN, out_kernel_size=1)

    def build(self, *input_shapes):
        # Sub-layers build themselves on first call; this layer has no weights of its own.
        self.built = True

    @property
    def output_conv(self):
        """F's last layer, the 1x1 conv to ``D`` channels (a Keras ``Conv2D`` inside ``Conv``)."""
        return self.predictor.blocks[-1].conv

    def hidden(self, e_f, disparity):
        x = self.conv4_4(tf.concat([e_f, self.conv_dme(disparity)], axis=-1))
        for block in self.predictor.blocks[:-1]:
            x = block(x)
        return x

    def call(self, e_f, disparity):
        return self.predictor.blocks[-1](self.hidden(e_f, disparity))

    def reference_weights(self):
        return (self.conv_dme.reference_weights("conv_DME") + self.conv4_4.reference_weights("conv4_4")
                + self.predictor.reference_weights("F"))


class Reconstructor(keras.layers.Layer):
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

    def build(self, *input_shapes):
        # Sub-layers build themselves on first call; this layer has no weights of its own.
        self.built = True

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
class IFAN(keras.Model):
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
        self.disparity_estimator = _head("DME", c, cfg.disparity_channels, ks, cfg.res_num, dtype)
        self.filter_predictor = FilterPredictor(cfg, dtype=dtype, name="filter_predictor")
        if cfg.use_iac:
            self.iac = IterativeAdaptiveConvolution(cfg.num_iterations, c, cfg.filter_size, mode=cfg.iac_mode,
                                                    dtype=dtype, name="iac")
        else:  # Table 1 baseline: residual blocks on concat[e_B, F] instead of the IAC
            self.iac_replacement = ReferenceSequential(
                [Conv(c, ks, dtype=dtype, name="conv_in"), ResBlock(c, cfg.res_num, ks, dtype=dtype, name="res1"),
                 ResBlock(c, cfg.res_num, ks, dtype=dtype, name="res2")], dtype=dtype, name="iac_replacement")
        self.reconstructor = Reconstructor(cfg, dtype=dtype, name="reconstructor")

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
    def _streamed_iac(self, e_b, hidden):
        """IAC with the filter map computed one iteration at a time (same numbers, ~N x less memory).

        Returns ``[B, h, w, c]`` in the compute dtype, or float32 under mixed precision.

        Each iteration needs ``k`` kernel taps per pass and the bias, ``[B, h, w, c]`` each. They are
        computed by one small matmul each from the matching columns of F's final 1x1 conv (tap
        ``t`` of a kernel starting at channel ``s`` is columns ``s + t, s + t + k, ...``), so the
        filter map is never sliced with a channel stride (a slow copy on CPU).
        """
        conv = self.filter_predictor.output_conv
        dtype = self.iac.compute_dtype
        kernel = tf.cast(conv.kernel, dtype)[0, 0]  # [c_hidden, D]
        bias = tf.cast(conv.bias, dtype)
        hidden = tf.cast(hidden, dtype)
        c, k = self.iac.channels, self.iac.filter_size
        # Under mixed precision the matmuls run in bf16/fp16 but the 17 filter passes accumulate in
        # float32: as fast on CPU (Eigen's bf16 elementwise ops are not faster) and more accurate.
        iac_dtype = tf.float32 if dtype in ("bfloat16", "float16") else dtype
        pixels = tf.reshape(hidden, [-1, hidden.shape[-1]])
        shape = tf.concat([tf.shape(hidden)[:3], [c]], axis=0)

        def project(columns):  # [B, h, w, c]: the filter-map channels `columns` (a slice)
            projected = tf.nn.bias_add(tf.matmul(pixels, kernel[:, columns]), bias[columns])
            return tf.reshape(tf.cast(projected, iac_dtype), shape)

        def taps(start):
            return [project(slice(start + t, start + c * k, k)) for t in range(k)]

        x = tf.cast(e_b, iac_dtype)
        n = self.config.num_iterations
        for i in range(n):
            (k1_start, _), (k2_start, _), (bias_start, bias_stop) = self.iac.iteration_channels(i)
            with tf.control_dependencies([x] if i else []):  # this iteration's filters only now
                taps1 = taps(k1_start)
                taps2 = taps1 if self.config.iac_mode == "checkpoint" else taps(k2_start)  # kernel2 unused there
                pixel_bias = project(slice(bias_start, bias_stop))
            x = self.iac.apply_iteration_taps(x, taps1, taps2, pixel_bias, i == n - 1)
        return x

    def _infer(self, image, right, left):
        """``call(training=False)`` with the IAC: the same numbers, ordered for a low peak memory.

        Control dependencies make the graph executor run the filter branch (filter encoder, DME,
        filter predictor) before the feature extractor, so only one full-resolution encoder is
        alive at a time, and compute each IAC iteration's filters only when the previous
        iteration is done (otherwise all N iterations' filters, the whole filter map, would be
        computed up front). In eager mode the order is the program order anyway.
        """
        e_f, _ = self.filter_encoder(self._encoder_input(image, right, left))
        hidden = self.filter_predictor.hidden(e_f, self.disparity_estimator(e_f))
        with tf.control_dependencies([hidden]):
            image_after_filter_branch = tf.identity(image)
        e_b, pyramid = self.feature_extractor(image_after_filter_branch)
        features = self._streamed_iac(e_b, hidden)
        residual = self.reconstructor(features, pyramid)
        return tf.clip_by_value(tf.cast(residual, tf.float32) + tf.cast(image, tf.float32), 0.0, 1.0)

    def call(self, inputs, training=False):
        image, right, left = self._unpack(inputs)
        if not training and self.config.use_iac:
            return self._infer(image, right, left)
        e_b, pyramid = self.feature_extractor(image)
        e_f, _ = self.filter_encoder(self._encoder_input(image, right, left))
        disparity = self.disparity_estimator(e_f)
        filters = None
        if not self.config.use_iac:
            filters = self.filter_predictor(e_f, disparity)
            features = self.iac_replacement(tf.concat([e_b, tf.cast(filters, e_b.dtype)], axis=-1))
        else:
            filters = self.filter_predictor(e_f, disparity)
            features = self.iac(e_b, filters)
        residual = self.reconstructor(features, pyramid)
        deblurred = tf.cast(residual, tf.float32) + tf.cast(image, tf.float32)
        if not training:
            return tf.clip_by_value(deblurred, 0.0, 1.0)

        outputs = {"deblurred": deblurred, "filters": filters, "disparity": disparity}
        if self.config.use_dme and self.config.dual_pixel_input:
            outputs["disparity_right"] = disparity  # the encoder already sees concat[R, L]
        elif self.config.use_dme and right is not None:
            e_f_right, _ = self.filter_encoder(right)
            outputs["disparity_right"] = self.disparity_estimator(e_f_right)
        return outputs

    # -- weights --------------------------------------------------------------------------
    def reference_weights(self):
        """``[(reference_name, variable, layout)]`` for every weight, in the reference's names."""
        names = self.feature_extractor.reference_weights() + self.filter_encoder.reference_weights()
        names += self.disparity_estimator.reference_weights("DME") + self.filter_predictor.reference_weights()
        if not self.config.use_iac:
            names += self.iac_replacement.reference_weights("iac_replacement")
        return names + self.reconstructor.reference_weights()

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "dtype": keras.saving.serialize_keras_object(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        dtype = config.pop("dtype", None)
        if dtype is not None:
            config["dtype"] = keras.saving.deserialize_keras_object(dtype)
        return cls(**config)


def build_ifan(config=None, dtype=None):
    """Creates an IFAN model and builds its weights (runs it once on a small zero input)."""
    model = IFAN(config, dtype=dtype)
    cfg = model.config
    image = tf.zeros([1, 16, 16, 3])
    inputs = {"image": image, "right": image, "left": image} if cfg.dual_pixel_input else image
    model(inputs, training=True)
    return model
