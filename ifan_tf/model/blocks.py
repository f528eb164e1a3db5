"""Convolution building blocks of IFAN (spec "Building blocks").

Every block knows the names of its weights in the reference PyTorch state_dict
(``reference_weights(prefix)``), so that checkpoint import and the model directory format use one
naming scheme that lives next to the architecture.

Weight layouts named in ``reference_weights``: ``"conv"`` (reference (out, in, kh, kw), Keras
(kh, kw, in, out)), ``"conv_transpose"`` (reference (in, out, kh, kw), Keras (kh, kw, out, in)) and
``"vector"`` (biases, identical).
"""

import keras
import tensorflow as tf

LEAKY_SLOPE = 0.1


def leaky_relu_after_add(x):
    """LeakyReLU(0.1) for a residual sum, written as ``max(x, 0.1 x)`` (identical values).

    TF 2.21's oneDNN graph rewrite fuses Conv2D + BiasAdd + Add + LeakyRelu into one kernel that
    ignores the LeakyRelu ``alpha``: inside ``tf.function`` a plain ``tf.nn.leaky_relu`` here
    computes the wrong slope (eager mode is unaffected). ``tests/model/test_reference_parity.py``
    runs the reference comparison in graph mode to guard against this.
    """
    return tf.maximum(x, LEAKY_SLOPE * x)


def glorot_uniform(gain=1.0):
    """Xavier/Glorot uniform with ``gain`` (limit ``gain * sqrt(6 / (fan_in + fan_out))``)."""
    return keras.initializers.VarianceScaling(scale=gain * gain, mode="fan_avg", distribution="uniform")


@keras.saving.register_keras_serializable(package="ifan_tf")
class Conv(keras.layers.Layer):
    """``conv(cin, cout, k, stride)``: zero-padded conv with bias, then LeakyReLU(0.1) if ``activation``.

    Padding is ``(k - 1) / 2`` on every side as in the reference (Keras ``"same"`` pads stride-2
    convs asymmetrically, so stride 2 pads explicitly).

    Input ``[B, H, W, cin]``; output ``[B, H / stride, W / stride, filters]``.
    """

    def __init__(self, filters, kernel_size=3, stride=1, activation=True, gain=1.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.stride = filters, kernel_size, stride
        self.activation, self.gain = activation, gain
        self.conv = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=stride,
            padding="same" if stride == 1 else "valid",
            kernel_initializer=glorot_uniform(gain),
            bias_initializer="zeros",
            dtype=self.dtype_policy,
            name="conv",
        )

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        if self.stride != 1:
            pad = (self.kernel_size - 1) // 2
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        x = self.conv(x)
        return tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE) if self.activation else x

    def reference_weights(self, prefix):
        # conv() with an activation is nn.Sequential(Conv2d, LeakyReLU): weights under ".0".
        base = f"{prefix}.0" if self.activation else prefix
        return [(f"{base}.weight", self.conv.kernel, "conv"), (f"{base}.bias", self.conv.bias, "vector")]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, stride=self.stride,
                      activation=self.activation, gain=self.gain)
        return config


@keras.saving.register_keras_serializable(package="ifan_tf")
class ResBlock(keras.layers.Layer):
    """``ResBlock(c, n)``: ``n`` units ``x = LReLU(x + conv(LReLU(conv(x))))``, plus an outer skip if n > 1.

    Input and output ``[B, H, W, c]``.
    """

    def __init__(self, channels, num_units, kernel_size=3, gain=1.0, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.num_units, self.kernel_size, self.gain = channels, num_units, kernel_size, gain
        self.unit_convs = [
            (
                Conv(channels, kernel_size, activation=False, gain=gain, dtype=self.dtype_policy, name=f"unit{i}_conv0"),
                Conv(channels, kernel_size, activation=False, gain=gain, dtype=self.dtype_policy, name=f"unit{i}_conv2"),
            )
            for i in range(num_units)
        ]

    def build(self, input_shape):
        for first, second in self.unit_convs:
            first.build(input_shape)
            second.build(input_shape[:-1] + (self.channels,))

    def call(self, x):
        block_input = x
        for first, second in self.unit_convs:
            y = second(tf.nn.leaky_relu(first(x), alpha=LEAKY_SLOPE))
            x = leaky_relu_after_add(x + y)
        return x + block_input if self.num_units > 1 else x

    def reference_weights(self, prefix):
        names = []
        for i, (first, second) in enumerate(self.unit_convs):
            names += first.reference_weights(f"{prefix}.stem.{i}.0")
            names += second.reference_weights(f"{prefix}.stem.{i}.2")
        return names

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, num_units=self.num_units, kernel_size=self.kernel_size, gain=self.gain)
        return config


@keras.saving.register_keras_serializable(package="ifan_tf")
class UpConv(keras.layers.Layer):
    """``upconv(cin, cout)``: transposed conv (kernel 4, stride 2, padding 1) with bias, then LReLU(0.1).

    Input ``[B, H, W, cin]``; output ``[B, 2H, 2W, filters]``.
    """

    def __init__(self, filters, gain=1.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.gain = filters, gain
        # Keras "same" with kernel 4 / stride 2 crops one pixel per side: PyTorch's padding=1.
        self.deconv = keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", kernel_initializer=glorot_uniform(gain),
            bias_initializer="zeros", dtype=self.dtype_policy, name="deconv",
        )

    def build(self, input_shape):
        self.deconv.build(input_shape)

    def call(self, x):
        return tf.nn.leaky_relu(self.deconv(x), alpha=LEAKY_SLOPE)

    def reference_weights(self, prefix):
        return [(f"{prefix}.0.weight", self.deconv.kernel, "conv_transpose"),
                (f"{prefix}.0.bias", self.deconv.bias, "vector")]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, gain=self.gain)
        return config


@keras.saving.register_keras_serializable(package="ifan_tf")
class ReferenceSequential(keras.layers.Layer):
    """Blocks applied in order, named like the reference's ``nn.Sequential`` (``prefix.0``, ``prefix.1``...)."""

    def __init__(self, blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = list(blocks)

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def reference_weights(self, prefix):
        names = []
        for i, block in enumerate(self.blocks):
            names += block.reference_weights(f"{prefix}.{i}")
        return names

