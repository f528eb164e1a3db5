"""Milliseconds of a 3x3 convolution's filter gradient: oneDNN's kernel against two matmul forms.

Usage (from the repository root):
  python -m benchmarks.conv_filter_gradient                          # demo sizes, bfloat16 and float32
  python -m benchmarks.conv_filter_gradient --sizes=paper --precisions=float32

The training step spends most of its time in convolutions, and of those the filter gradients
(``Conv2DBackpropFilter``) are the largest part. This checks whether writing that gradient another
way would be faster on this CPU, for the shapes of IFAN's layers (``--sizes``: demo = width 16,
128x128 crops, batch 4; paper = width 32, 256x256, batch 4):

- ``conv``: ``tf.raw_ops.Conv2DBackpropFilter`` (oneDNN), what the step runs;
- ``taps``: one ``[B*H*W, C]^T x [B*H*W, C_out]`` matmul per tap of the zero-padded input;
- ``im2col``: the nine shifted slices concatenated along channels, then one matmul.

Each form is timed alone: ``--calls`` independent gradients in one ``tf.function`` (so the call
overhead is shared), median of ``--repeats`` calls, in ms per gradient. Inside a training step two
operations often run at once, so oneDNN's verbose log shows longer times than these. The largest
relative difference of the matmul forms from ``conv`` is printed as a check that all three compute
the same gradient.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

SIZES = {  # (batch, height, width, channels in, channels out) of the step's 3x3 convolutions
    "demo": [(4, 16, 16, 64, 64), (8, 16, 16, 64, 64), (4, 32, 32, 64, 64), (4, 64, 64, 32, 32),
             (4, 128, 128, 16, 16)],
    "paper": [(4, 32, 32, 128, 128), (8, 32, 32, 128, 128), (4, 64, 64, 128, 128), (4, 128, 128, 64, 64),
              (4, 256, 256, 32, 32)],
}

flags.DEFINE_enum("sizes", "demo", list(SIZES), "Layer shapes: demo or paper.")
flags.DEFINE_list("precisions", ["bfloat16", "float32"], "bfloat16 and/or float32.")
flags.DEFINE_integer("calls", 20, "Gradients per tf.function call.", lower_bound=1)
flags.DEFINE_integer("repeats", 7, "Timed calls per form; the median is printed.", lower_bound=1)
FLAGS = flags.FLAGS


def shifted_slices(x, kernel_size=3):
    """The ``kernel_size**2`` shifted views of zero-padded ``x`` [B, H, W, C], tap by tap (row-major)."""
    import tensorflow as tf

    pad = kernel_size // 2
    height, width = x.shape[1], x.shape[2]
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return [padded[:, i:i + height, j:j + width, :] for i in range(kernel_size) for j in range(kernel_size)]


def filter_gradient_taps(x, dy, kernel_size=3):
    """dL/dW [k, k, C, C_out] of a SAME conv from ``x`` [B, H, W, C] and ``dy`` [B, H, W, C_out]: a matmul per tap."""
    import tensorflow as tf

    channels, out = x.shape[-1], dy.shape[-1]
    dy_rows = tf.reshape(dy, [-1, out])
    taps = [tf.matmul(tf.reshape(tap, [-1, channels]), dy_rows, transpose_a=True)
            for tap in shifted_slices(x, kernel_size)]
    return tf.reshape(tf.stack(taps), [kernel_size, kernel_size, channels, out])


def filter_gradient_im2col(x, dy, kernel_size=3):
    """The same gradient as one matmul over the concatenated shifted slices."""
    import tensorflow as tf

    channels, out = x.shape[-1], dy.shape[-1]
    columns = tf.reshape(tf.concat(shifted_slices(x, kernel_size), axis=-1),
                         [-1, kernel_size * kernel_size * channels])
    return tf.reshape(tf.matmul(columns, tf.reshape(dy, [-1, out]), transpose_a=True),
                      [kernel_size, kernel_size, channels, out])


def main(argv):
    del argv
    for precision in FLAGS.precisions:
        if precision not in ("bfloat16", "float32"):
            raise app.UsageError(f"--precisions: unknown precision {precision!r}; use bfloat16 or float32")
    import tensorflow as tf

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores; ms per filter gradient "
          f"(median of {FLAGS.repeats} calls of {FLAGS.calls} gradients)")
    for precision in FLAGS.precisions:
        dtype = tf.as_dtype(precision)
        for batch, height, width, channels, out in SIZES[FLAGS.sizes]:
            xs = [tf.cast(tf.random.normal([batch, height, width, channels], seed=i), dtype)
                  for i in range(FLAGS.calls)]
            dys = [tf.cast(tf.random.normal([batch, height, width, out], seed=100 + i), dtype)
                   for i in range(FLAGS.calls)]
            sizes = tf.constant([3, 3, channels, out])

            def conv(x, dy, sizes=sizes):
                return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=sizes, out_backprop=dy,
                                                       strides=[1, 1, 1, 1], padding="SAME")

            times, results = {}, {}
            for name, gradient in (("conv", conv), ("taps", filter_gradient_taps), ("im2col", filter_gradient_im2col)):
                run = tf.function(lambda xs, dys, gradient=gradient: [gradient(x, dy) for x, dy in zip(xs, dys)])
                results[name] = tf.cast(run(xs, dys)[0], tf.float32)
                samples = []
                for _ in range(FLAGS.repeats):
                    start = time.perf_counter()
                    run(xs, dys)
                    samples.append((time.perf_counter() - start) / FLAGS.calls * 1e3)
                times[name] = statistics.median(samples)
            scale = float(tf.reduce_max(tf.abs(results["conv"])))
            difference = max(float(tf.reduce_max(tf.abs(results[name] - results["conv"])))
                             for name in ("taps", "im2col"))
            print(f"{precision:8s} batch {batch} {height}x{width} {channels}->{out}: conv {times['conv']:6.2f}  "
                  f"taps {times['taps']:6.2f}  im2col {times['im2col']:6.2f} ms  (relative difference "
                  f"{difference / scale:.1e})", flush=True)


if __name__ == "__main__":
    app.run(main)
