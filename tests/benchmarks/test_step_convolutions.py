"""The step-convolution reader: it finds exactly the convolutions a traced step runs, and replays each
with its own attributes (the floor that ``benchmarks/train_step.py --convolutions`` times)."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import step_convolutions as step_convolutions_module
from benchmarks.step_convolutions import (floor_at_matmul_rate, gflop_by_dtype, matmul_rate, step_convolutions,
                                          time_convolutions, traced_graphs)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RNG = np.random.default_rng(0)


def _constant(*shape):
    return tf.constant(RNG.uniform(-1, 1, size=shape).astype(np.float32))


def _small_step():
    """A traced training-like step: conv (SAME), conv (stride 2, VALID), transposed conv, one unused conv."""
    kernels = [tf.Variable(_constant(3, 3, 3, 4)), tf.Variable(_constant(3, 3, 4, 5)),
               tf.Variable(_constant(2, 2, 6, 5)), tf.Variable(_constant(1, 1, 3, 2))]

    @tf.function
    def step(image):
        with tf.GradientTape() as tape:
            x = tf.nn.conv2d(image, kernels[0], strides=1, padding="SAME")
            x = tf.nn.conv2d(tf.nn.relu(x), kernels[1], strides=2, padding="VALID")
            x = tf.nn.conv2d_transpose(x, kernels[2], output_shape=[2, 8, 8, 6], strides=2)
            tf.nn.conv2d(image, kernels[3], strides=1, padding="SAME")  # unused: pruned, never runs
            loss = tf.reduce_sum(tf.square(x))
        gradients = tape.gradient(loss, kernels[:3])
        for kernel, gradient in zip(kernels, gradients):
            kernel.assign_sub(1e-3 * gradient)
        return loss

    step(_constant(2, 9, 9, 3))
    return step


def test_reads_the_convolutions_the_step_runs_and_not_the_pruned_one():
    step = _small_step()
    specs = step_convolutions(traced_graphs(step))
    # Forward: 2 Conv2D and the transposed conv (a Conv2DBackpropInput). Backward: the transposed
    # conv's input gradient is a Conv2D, the stride-2 conv's a Conv2DBackpropInput; the first conv
    # has no input gradient (the image is not trained); three filter gradients.
    assert collections.Counter(spec.op_type for spec in specs) == {
        "Conv2D": 3, "Conv2DBackpropInput": 2, "Conv2DBackpropFilter": 3}
    assert all(spec.dtype == "float32" for spec in specs)
    assert (1, 1, 3, 2) not in [shape for spec in specs for shape in spec.tensor_shapes()]  # the unused kernel


def test_closures_of_tf_functions_are_read_and_an_untraced_step_is_refused():
    step = _small_step()

    def two_function_step(batch):  # like the step that skips non-finite updates
        return step(batch)

    assert len(step_convolutions(traced_graphs(two_function_step))) == 8
    with pytest.raises(ValueError, match="no traced tf.function"):
        traced_graphs(tf.function(lambda x: x))


@pytest.mark.parametrize("op_type, make, x_shape, kernel_shape", [
    ("Conv2D", lambda x, k: tf.nn.conv2d(x, k, strides=2, padding="VALID"), (2, 9, 9, 3), (3, 3, 3, 4)),
    ("Conv2D", lambda x, k: tf.nn.conv2d(x, k, strides=[1, 1, 2, 1], padding=[[0, 0], [2, 0], [1, 1], [0, 0]],
                                         dilations=[1, 2, 1, 1]), (2, 9, 9, 3), (3, 3, 3, 4)),
    ("Conv2DBackpropInput", lambda x, k: tf.nn.conv2d_transpose(x, k, output_shape=[2, 9, 9, 4], strides=2,
                                                                padding="VALID"), (2, 4, 4, 5), (3, 3, 4, 5)),
])
def test_a_replayed_convolution_keeps_its_attributes(op_type, make, x_shape, kernel_shape):
    x, kernel = _constant(*x_shape), _constant(*kernel_shape)
    function = tf.function(make)
    (spec,) = step_convolutions([function.get_concrete_function(x, kernel).graph])
    assert spec.op_type == op_type
    operands = [{x_shape: x, kernel_shape: kernel}[shape] for shape in spec.tensor_shapes()]
    np.testing.assert_allclose(spec.run(operands).numpy(), function(x, kernel).numpy(), rtol=1e-6, atol=1e-6)


def test_flops_of_a_convolution_and_its_gradients_are_equal():
    specs = step_convolutions(traced_graphs(_small_step()))
    first_layer = [spec for spec in specs if (3, 3, 3, 4) in spec.tensor_shapes() or
                   spec.operands[1] == ("sizes", (3, 3, 3, 4))]
    assert [spec.op_type for spec in first_layer] == ["Conv2D", "Conv2DBackpropFilter"]
    expected = 2 * 2 * 9 * 9 * 3 * 3 * 3 * 4  # batch 2, 9x9 SAME output, 3x3 kernel, 3 -> 4 channels
    assert [spec.flops() for spec in first_layer] == [expected, expected]


def test_a_convolution_in_a_nested_function_is_refused():
    kernel = _constant(3, 3, 3, 4)

    @tf.function
    def step(x, flag):
        return tf.cond(flag, lambda: tf.nn.conv2d(x, kernel, 1, "SAME"), lambda: tf.zeros([2, 9, 9, 4]))

    graph = step.get_concrete_function(_constant(2, 9, 9, 3), tf.constant(True)).graph
    with pytest.raises(ValueError, match="nested function .* holds convolutions"):
        step_convolutions([graph])


def test_a_convolution_with_an_unknown_shape_is_refused():
    kernel = _constant(3, 3, 3, 4)
    step = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"),
                       input_signature=[tf.TensorSpec([None, 9, 9, 3], tf.float32)])
    with pytest.raises(ValueError, match=r"Conv2D .* not fully known; trace the step with fixed batch"):
        step_convolutions([step.get_concrete_function().graph])


def test_a_gradient_whose_sizes_are_not_a_graph_constant_is_refused():
    @tf.function(input_signature=[tf.TensorSpec([4], tf.int32), tf.TensorSpec([2, 4, 4, 5], tf.float32)])
    def transposed(sizes, x):
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=sizes, filter=_constant(3, 3, 4, 5), out_backprop=x,
                                              strides=[1, 2, 2, 1], padding="VALID")

    with pytest.raises(ValueError, match="Conv2DBackpropInput .* size operand .* is not a graph constant"):
        step_convolutions([transposed.get_concrete_function().graph])


@pytest.mark.parametrize("serial", [False, True])
def test_time_convolutions_runs_every_convolution(serial):
    specs = step_convolutions(traced_graphs(_small_step()))
    times = time_convolutions(specs, calls=3, serial=serial)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_the_floor_at_matmul_rate_takes_each_dtype_at_its_rate():
    specs = step_convolutions(traced_graphs(_small_step()))
    bfloat16_conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, strides=1, padding="SAME"))
    x, kernel = tf.cast(_constant(1, 6, 6, 8), tf.bfloat16), tf.cast(_constant(3, 3, 8, 8), tf.bfloat16)
    specs += step_convolutions([bfloat16_conv.get_concrete_function(x, kernel).graph])
    float32_gflop = sum(spec.flops() for spec in specs if spec.dtype == "float32") / 1e9
    bfloat16_gflop = 2 * 6 * 6 * 8 * 3 * 3 * 8 / 1e9
    assert gflop_by_dtype(specs) == pytest.approx({"float32": float32_gflop, "bfloat16": bfloat16_gflop})
    assert floor_at_matmul_rate(specs, {"float32": 2.0, "bfloat16": 8.0}) == pytest.approx(
        float32_gflop / 2.0 + bfloat16_gflop / 8.0)


def test_matmul_rate_is_flops_over_the_median_call(monkeypatch):
    class OneSecondPerCall:  # perf_counter advances 1 s per reading, so every timed call takes 1 s
        now = 0.0

        @classmethod
        def perf_counter(cls):
            cls.now += 1.0
            return cls.now

    monkeypatch.setattr(step_convolutions_module, "time", OneSecondPerCall)
    # The best over the sizes: the larger product, 2 * 64^3 FLOP in 1 s.
    assert matmul_rate("float32", sizes=(32, 64), calls=3) == pytest.approx(2 * 64 ** 3 / 1e9)
    assert matmul_rate("bfloat16", sizes=(16,), calls=1) == pytest.approx(2 * 16 ** 3 / 1e9)


@pytest.mark.slow
def test_the_demo_training_step_is_read_whole():
    # A subprocess: the benchmarks' absl flags clash when two of them are imported in one process.
    completed = subprocess.run([sys.executable, "-m", "benchmarks.train_step", "--configs=demo", "--steps=1",
                                "--precisions=mixed_bfloat16", "--convolutions", "--json"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    alone = json.loads(completed.stdout.splitlines()[-1])["convolutions"]
    counts = [int(alone["description"].split(f" {kind}")[0].split(", ")[-1])
              for kind in ("forward", "input-gradient", "filter-gradient")]
    # Every convolution of the step is trained (one filter gradient each); the two encoders' first
    # convolutions need no input gradient (their inputs are images).
    assert counts[0] == counts[2] > 50 and counts[1] <= counts[0] - 2
    assert "convolutions (bfloat16)" in alone["description"]  # mixed precision computes them in bfloat16
    assert 0 < alone["seconds"] == min(alone["overlapped"], alone["serial"])
    # The floor at this CPU's bfloat16 matrix-product rate, measured in the worker, is their work over it.
    assert list(alone["matmul_rates"]) == ["bfloat16"] and alone["matmul_rates"]["bfloat16"] > 0
    assert alone["floor_at_matmul_rate"] == pytest.approx(alone["gflop"] / alone["matmul_rates"]["bfloat16"])
    assert f"{alone['gflop']:.1f} GFLOP" in alone["description"]
