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

from ifan_tf.model.filter_map import LinearFilterMap

LEAKY_SLOPE = 0.1


def _output_gradient(upstream, output):
    """LeakyReLU's gradient read from its output: ``dy`` where ``y > 0``, else ``0.1 dy`` (y > 0 iff x > 0)."""
    return tf.raw_ops.LeakyReluGrad(gradients=upstream, features=output, alpha=LEAKY_SLOPE)


@tf.custom_gradient
def leaky_relu(features):
    """LeakyReLU(0.1) (``tf.nn.leaky_relu``) whose gradient reads the activation's output, not its input.

    Same values and gradient (``y = LeakyReLU(x)`` is positive exactly where ``x`` is). It matters
    for speed in graph mode: with the stock gradient, ``LeakyReluGrad`` reads the conv's
    ``BiasAdd`` output, which Grappler's remapper then cannot fuse into ``Conv2D + BiasAdd +
    LeakyRelu``; on the training graph it even failed with "fanout ... exist for missing node" and
    dropped all of its fusions.
    """
    output = tf.nn.leaky_relu(features, alpha=LEAKY_SLOPE)
    return output, lambda upstream: _output_gradient(upstream, output)


@tf.custom_gradient
def leaky_relu_after_add(features):
    """LeakyReLU(0.1) for a residual sum, written as ``max(x, 0.1 x)`` (identical values).

    TF 2.21's oneDNN graph rewrite fuses Conv2D + BiasAdd + Add + LeakyRelu into one kernel that
    ignores the LeakyRelu ``alpha``: inside ``tf.function`` a plain ``tf.nn.leaky_relu`` here
    computes the wrong slope (eager mode is unaffected). ``tests/model/test_reference_parity.py``
    runs the reference comparison in graph mode to guard against this.

    The gradient is one ``LeakyReluGrad`` on the output (``dy`` where ``x > 0``, else ``0.1 dy``)
    instead of the selects, multiply and sum that ``tf.maximum``'s gradient builds; the two differ
    only at ``x == 0`` exactly, where the derivative is undefined.
    """
    output = tf.maximum(features, LEAKY_SLOPE * features)
    return output, lambda upstream: _output_gradient(upstream, output)


def build_once(layer, *shapes):
    """``layer.build(*shapes)`` unless it is built already (e.g. restored by Keras deserialisation)."""
    if not layer.built:
        layer.build(*shapes)


class SavesNestedLayers:
    """Mixin: ``.keras`` saving of the weights of sub-layers kept in nested lists or tuples.

    Keras' ``.keras`` format walks a layer's attributes and the layers directly inside lists, not
    lists of lists (``Encoder.levels``, ``ResBlock.unit_convs``, ``Reconstructor.up_levels``), whose
    weights it would silently skip. These layers save those weights as their own, in a fixed
    order. (The attributes stay nested: ``tf.train.Checkpoint`` object paths are unchanged.)
    """

    def nested_layers(self):
        """The sub-layers held in nested containers, in a fixed order."""
        raise NotImplementedError

    def _nested_variables(self):
        return [variable for layer in self.nested_layers() for variable in layer.weights]

    def save_own_variables(self, store):
        for index, variable in enumerate(self._nested_variables()):
            store[str(index)] = variable

    def load_own_variables(self, store):
        variables = self._nested_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(f"{self.name}: the saved file holds {len(store.keys())} weights, the layer has "
                             f"{len(variables)} (was it saved from a different configuration?)")
        for index, variable in enumerate(variables):
            variable.assign(store[str(index)])


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
        build_once(self.conv, input_shape)

    def call(self, x):
        if self.stride != 1:
            pad = (self.kernel_size - 1) // 2
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        x = self.conv(x)
        return leaky_relu(x) if self.activation else x

    def call_on_filter_map(self, filter_map):
        """``call`` on a ``LinearFilterMap`` without materialising it (stride 1 only).

        Returns ``[B, h, w, filters]`` in the filter map's dtype: the same numbers as
        ``call(filter_map.dense())`` up to float32 summation order, at a fraction of the cost when
        the map is much deeper than its hidden features (the RBN's first conv: 15,232 vs 128).
        """
        if self.stride != 1:
            raise ValueError(f"{self.name}: call_on_filter_map supports stride 1 only, got {self.stride}")
        x = tf.nn.bias_add(filter_map.convolve(self.conv.kernel), tf.cast(self.conv.bias, filter_map.dtype))
        return leaky_relu(x) if self.activation else x

    def factored(self, x):
        """``call(x)`` kept factored as a ``LinearFilterMap`` (1x1, stride 1, no activation only).

        ``x`` is ``[B, H, W, cin]``; ``factored(x).dense()`` equals ``call(x)`` up to summation order.
        """
        if self.kernel_size != 1 or self.stride != 1 or self.activation:
            raise ValueError(f"{self.name}: only a linear 1x1 conv can be kept factored "
                             f"(kernel {self.kernel_size}, stride {self.stride}, activation {self.activation})")
        return LinearFilterMap.of(x, self.conv.kernel[0, 0], self.conv.bias)

    def compute_output_shape(self, input_shape):
        def scaled(size):
            return None if size is None else -(-size // self.stride)
        return (input_shape[0], scaled(input_shape[1]), scaled(input_shape[2]), self.filters)

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
class ResBlock(SavesNestedLayers, keras.layers.Layer):
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
            build_once(first, input_shape)
            build_once(second, input_shape[:-1] + (self.channels,))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def nested_layers(self):
        return [conv for pair in self.unit_convs for conv in pair]

    def call(self, x):
        block_input = x
        for first, second in self.unit_convs:
            y = second(leaky_relu(first(x)))
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
        build_once(self.deconv, input_shape)

    def call(self, x):
        return leaky_relu(self.deconv(x))

    def compute_output_shape(self, input_shape):
        def doubled(size):
            return None if size is None else 2 * size
        return (input_shape[0], doubled(input_shape[1]), doubled(input_shape[2]), self.filters)

    def reference_weights(self, prefix):
        return [(f"{prefix}.0.weight", self.deconv.kernel, "conv_transpose"),
                (f"{prefix}.0.bias", self.deconv.bias, "vector")]

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, gain=self.gain)
        return config


@keras.saving.register_keras_serializable(package="ifan_tf")
class ReferenceSequential(keras.layers.Layer):
    """Blocks applied in order, named like the reference's ``nn.Sequential`` (``prefix.0``, ``prefix.1``...).

    Input ``[B, H, W, C]``; output the last block's output. The blocks must be serialisable Keras
    layers with ``reference_weights(prefix)`` (``Conv``, ``ResBlock``, ``UpConv``, ``Head``).
    """

    def __init__(self, blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [block if isinstance(block, keras.layers.Layer) else keras.saving.deserialize_keras_object(block)
                       for block in blocks]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            build_once(block, shape)
            shape = block.compute_output_shape(shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            shape = block.compute_output_shape(shape)
        return shape

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def reference_weights(self, prefix):
        names = []
        for i, block in enumerate(self.blocks):
            names += block.reference_weights(f"{prefix}.{i}")
        return names

    def get_config(self):
        config = super().get_config()
        config.update(blocks=[keras.saving.serialize_keras_object(block) for block in self.blocks])
        return config


@keras.saving.register_keras_serializable(package="ifan_tf")
class Head(ReferenceSequential):
    """``conv -> ResBlock(res_num) x2 -> conv``: the DME, ``conv4_4``, the filter predictor F and the RBN.

    Input ``[B, h, w, C]``; output ``[B, h, w, out_channels]`` (LeakyReLU only if
    ``out_activation``). ``call_on_filter_map`` runs it on a ``LinearFilterMap`` (the RBN on F).
    """

    def __init__(self, channels, out_channels, kernel_size=3, res_num=2, gain=1.0, out_kernel_size=None,
                 out_activation=False, **kwargs):
        kwargs.pop("blocks", None)
        dtype = kwargs.get("dtype")
        blocks = [
            Conv(channels, kernel_size, gain=gain, dtype=dtype, name="conv_in"),
            ResBlock(channels, res_num, kernel_size, gain=gain, dtype=dtype, name="res1"),
            ResBlock(channels, res_num, kernel_size, gain=gain, dtype=dtype, name="res2"),
            Conv(out_channels, out_kernel_size or kernel_size, activation=out_activation, gain=gain,
                 dtype=dtype, name="conv_out"),
        ]
        super().__init__(blocks, **kwargs)
        self.channels, self.out_channels, self.kernel_size, self.res_num = channels, out_channels, kernel_size, res_num
        self.gain, self.out_kernel_size, self.out_activation = gain, out_kernel_size, out_activation

    def hidden(self, x):
        """Every block but the last: ``[B, h, w, C]`` -> ``[B, h, w, channels]``."""
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def output(self, hidden):
        """The last block (``conv_out``) on ``hidden(x)``: ``call(x) == output(hidden(x))``."""
        return self.blocks[-1](hidden)

    def factored_output(self, hidden):
        """``output(hidden)`` kept factored, a ``LinearFilterMap`` (needs a linear 1x1 ``conv_out``)."""
        return self.blocks[-1].factored(hidden)

    def call_on_filter_map(self, filter_map):
        """``call(filter_map.dense())`` without materialising the map (see ``Conv.call_on_filter_map``)."""
        x = self.blocks[0].call_on_filter_map(filter_map)
        for block in self.blocks[1:]:
            x = block(x)
        return x

    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config.update(channels=self.channels, out_channels=self.out_channels, kernel_size=self.kernel_size,
                      res_num=self.res_num, gain=self.gain, out_kernel_size=self.out_kernel_size,
                      out_activation=self.out_activation)
        return config
