"""The convolutions of a traced training step, timed alone: a floor under the step's time.

Most of an IFAN training step on CPU is oneDNN convolutions (forward, input gradient, filter
gradient), and a faster step cannot make those kernels faster. ``step_convolutions`` reads every
``Conv2D``, ``Conv2DBackpropInput`` and ``Conv2DBackpropFilter`` that a traced ``tf.function``
graph really runs (the ops its outputs and control outputs depend on, as function pruning keeps
them), with their shapes, dtypes and attributes; ``time_convolutions`` runs exactly those
operations on random inputs, nothing else, so they go through the same oneDNN kernels. Used by
``benchmarks/train_step.py --convolutions``.

``matmul_rate`` measures, in the same process, how many GFLOP/s this CPU's matrix multiplication
reaches in a dtype (large square ``tf.matmul``, the best case of the same oneDNN library), and
``floor_at_matmul_rate`` the time the convolutions would take if every one of them ran at that
rate: a floor that holds for any convolution kernel no faster than the machine's matrix product.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

CONVOLUTION_TYPES = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
# The operand that is an integer shape (a constant in the graph) rather than a tensor of values.
_SIZE_OPERAND = {"Conv2DBackpropInput": 0, "Conv2DBackpropFilter": 1}
_ATTRIBUTES = ("strides", "padding", "explicit_paddings", "data_format", "dilations")


@dataclasses.dataclass(frozen=True)
class ConvolutionSpec:
    """One convolution operation of a graph: ``op_type``, operand shapes or sizes, dtype, attributes, output shape.

    ``operands`` holds, per input of the op, either ``("tensor", shape)`` or ``("sizes", values)``
    (the int32 shape operand of the two gradient ops).
    """

    op_type: str
    operands: tuple
    dtype: str
    attributes: tuple
    output_shape: tuple

    def run(self, tensors):
        """Runs the operation on ``tensors`` (one per ``"tensor"`` operand, in order) and returns its output."""
        tensors = iter(tensors)
        values = [tf.constant(value, tf.int32) if kind == "sizes" else next(tensors) for kind, value in self.operands]
        names = {"Conv2D": ("input", "filter"), "Conv2DBackpropInput": ("input_sizes", "filter", "out_backprop"),
                 "Conv2DBackpropFilter": ("input", "filter_sizes", "out_backprop")}[self.op_type]
        return getattr(tf.raw_ops, self.op_type)(**dict(zip(names, values)), **dict(self.attributes))

    def tensor_shapes(self):
        return [value for kind, value in self.operands if kind == "tensor"]

    def flops(self):
        """2 x multiply-adds of the operation (equal for a convolution and its two gradients)."""
        filter_shape = self.operands[1][1]  # the filter, or its sizes for the filter gradient
        # The forward convolution's output: the op's own, or the gradient ops' out_backprop.
        output_shape = self.output_shape if self.op_type == "Conv2D" else self.operands[2][1]
        return 2 * int(np.prod(output_shape)) * int(np.prod(filter_shape[:3]))


def _static_shape(tensor, op):
    if not tensor.shape.is_fully_defined():
        raise ValueError(f"{op.type} {op.name}: operand {tensor.name} has a shape {tensor.shape} that is not "
                         f"fully known; trace the step with fixed batch and crop sizes")
    return tuple(int(d) for d in tensor.shape)


def spec_of(op):
    """The ``ConvolutionSpec`` of one graph operation ``op`` (a type in ``CONVOLUTION_TYPES``)."""
    operands = []
    for index, tensor in enumerate(op.inputs):
        if _SIZE_OPERAND.get(op.type) == index:
            sizes = tf.get_static_value(tensor)
            if sizes is None and tensor.op.type == "ShapeN":  # the gradient's tf.shape of the forward operands
                sizes = _static_shape(tensor.op.inputs[tensor.value_index], op)
            if sizes is None:
                raise ValueError(f"{op.type} {op.name}: its size operand {tensor.name} is not a graph constant")
            operands.append(("sizes", tuple(int(s) for s in sizes)))
        else:
            operands.append(("tensor", _static_shape(tensor, op)))
    attributes = []
    for name in _ATTRIBUTES:
        value = op.get_attr(name)
        attributes.append((name, value.decode() if isinstance(value, bytes) else tuple(value)
                           if isinstance(value, list) else value))
    return ConvolutionSpec(op.type, tuple(operands), op.get_attr("T").name, tuple(attributes),
                           _static_shape(op.outputs[0], op))


def executed_operations(graph):
    """The operations of ``graph`` that its outputs and control outputs depend on (what runs)."""
    seen, stack = set(), [t.op for t in graph.outputs] + list(graph.control_outputs)
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend([t.op for t in op.inputs] + list(op.control_inputs))
    return [op for op in graph.get_operations() if op in seen]  # graph order


def step_convolutions(graphs):
    """``ConvolutionSpec``s of every convolution the traced ``graphs`` run, in graph order.

    Raises ``ValueError`` when a nested function of a graph (a ``tf.cond`` branch, a loop body, a
    function call) holds a convolution, which would be missed.
    """
    specs = []
    for graph in graphs:
        for function in graph.as_graph_def().library.function:
            nested = [node.name for node in function.node_def if node.op in CONVOLUTION_TYPES]
            if nested:
                raise ValueError(f"{graph.name}: its nested function {function.signature.name} holds convolutions "
                                 f"({', '.join(nested[:3])}), which are not read")
        specs += [spec_of(op) for op in executed_operations(graph) if op.type in CONVOLUTION_TYPES]
    return specs


def traced_graphs(step_fn):
    """The graphs of the ``tf.function``s behind a training step: ``step_fn`` itself, or those it closes over.

    The step must have run once (traced). Works for the single-function step of old trees and
    for the gradient-then-update pair of the step that skips non-finite updates.
    """
    functions = [step_fn] if hasattr(step_fn, "get_concrete_function") else [
        cell.cell_contents for cell in (step_fn.__closure__ or ())
        if hasattr(cell.cell_contents, "get_concrete_function")]
    graphs = [concrete.graph for function in functions for concrete in function._list_all_concrete_functions()]
    if not graphs:
        raise ValueError("the training step has no traced tf.function: run it once first")
    return graphs


def time_convolutions(specs, calls, serial=False, seed=0):
    """Seconds per call of one ``tf.function`` running every spec once on random inputs: a list of ``calls``.

    Operands of equal shape and dtype share one variable (values do not change the kernels' work).
    ``serial``: each convolution waits for the previous one (control dependencies); otherwise the
    executor runs independent convolutions as it likes, up to two at once on two cores, as it may
    in the step. The first call (tracing, kernel creation) is not timed.
    """
    rng = np.random.default_rng(seed)
    variables = {}
    for spec in specs:
        for shape in spec.tensor_shapes():
            if (shape, spec.dtype) not in variables:
                values = rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
                variables[(shape, spec.dtype)] = tf.Variable(tf.cast(values, spec.dtype), trainable=False)

    @tf.function
    def run_all():
        outputs = []
        for spec in specs:
            with tf.control_dependencies(outputs[-1:] if serial else []):
                outputs.append(spec.run([variables[(shape, spec.dtype)] for shape in spec.tensor_shapes()]))
        return outputs

    return _timed_calls(run_all, calls)


def _timed_calls(function, calls):
    """Seconds of ``calls`` calls of ``function``, after one untimed call (tracing, kernel creation)."""
    function()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def matmul_rate(dtype, sizes=(2048, 3072), calls=5):
    """GFLOP/s of this CPU's ``tf.matmul`` in ``dtype`` (a name, e.g. ``"float32"``): the best median over ``sizes``.

    Square ``[n, n] x [n, n]`` products (2 n^3 FLOP each) of random values; the first call of each
    size (tracing, kernel creation) is not timed.
    """
    rng = np.random.default_rng(0)
    rates = []
    for size in sizes:
        a, b = (tf.Variable(tf.cast(rng.uniform(-1.0, 1.0, (size, size)).astype(np.float32), dtype), trainable=False)
                for _ in range(2))
        times = _timed_calls(tf.function(lambda a=a, b=b: tf.matmul(a, b)), calls)
        rates.append(2 * size ** 3 / float(np.median(times)) / 1e9)
    return max(rates)


def gflop_by_dtype(specs):
    """``{dtype: GFLOP}`` of the specs (one step's convolutions)."""
    totals = {}
    for spec in specs:
        totals[spec.dtype] = totals.get(spec.dtype, 0.0) + spec.flops() / 1e9
    return totals


def floor_at_matmul_rate(specs, rates):
    """Seconds the convolutions ``specs`` would take at ``rates`` (``{dtype: GFLOP/s}``), each dtype at its rate."""
    return sum(gflop / rates[dtype] for dtype, gflop in gflop_by_dtype(specs).items())


def describe(specs):
    """One line: counts per op type, dtypes and GFLOP per step."""
    counts = {op_type: sum(spec.op_type == op_type for spec in specs) for op_type in CONVOLUTION_TYPES}
    gflop = gflop_by_dtype(specs)
    return (f"{counts['Conv2D']} forward, {counts['Conv2DBackpropInput']} input-gradient, "
            f"{counts['Conv2DBackpropFilter']} filter-gradient convolutions ({'/'.join(sorted(gflop))}), "
            f"{sum(gflop.values()):.1f} GFLOP")
