"""Reading the reference PyTorch state_dicts and mapping them onto the Keras models.

A state_dict is a mapping from reference names (``conv1_1.0.weight``, ``RBF.3.bias`` ...) to
arrays in reference layout. It can come from a released ``.pytorch``/``.pth`` file (needs torch)
or from an ``.npz`` holding the same names. Prefixes ``module.`` (multi-GPU wrapper),
``Network.`` (deblurring network) and ``reblurNet.`` (RBN) are understood.
"""

import os
import pickle

import numpy as np

from ifan_tf.model.config import ModelConfig
from ifan_tf.weights.checked_npz import DEFAULT_MAX_BYTES, NpzError, read_npz, read_npz_headers
from ifan_tf.weights.pytorch_zip import PyTorchZip, PyTorchZipError, TensorView, check_view_expansion, is_pytorch_zip

TORCH_SUFFIXES = (".pytorch", ".pth", ".pt")
REBLUR_PREFIX = "RBF."


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


def read_state_dict(path, expected_shapes=None, max_bytes=DEFAULT_MAX_BYTES):
    """Reads ``path`` (``.npz``, or ``.pytorch``/``.pth``/``.pt``) -> {name: float32 ndarray}.

    Every size in the file is checked before data is read (see ``checked_npz`` and
    ``pytorch_zip``); at most ``max_bytes`` of arrays are read or materialised, and no tensor view
    may expand its storage further than ``pytorch_zip.expansion_limit``. With ``expected_shapes``
    ({name: shape}, e.g. ``reference_shapes(network)``), the names and shapes are compared from the
    file's headers (``.npz``) or declared views (``.pth``) before any array is allocated, so no
    tensor can be larger than the model's. Raises ``CheckpointError`` naming ``path``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.endswith(".npz"):
        try:
            headers = read_npz_headers(path)
            if expected_shapes is not None:
                _raise_if_mismatched(expected_shapes, {name: h.shape for name, h in headers.items()},
                                     f"{path}: the weights do not fit the model")
            arrays = read_npz(path, headers, max_bytes)
        except NpzError as error:
            raise CheckpointError(str(error)) from error
        return {name: np.asarray(array, dtype=np.float32) for name, array in arrays.items()}
    if path.endswith(TORCH_SUFFIXES):
        return _read_torch_state_dict(path, max_bytes, expected_shapes)
    raise CheckpointError(
        f"{path}: unknown checkpoint type; expected a PyTorch state_dict ({', '.join(TORCH_SUFFIXES)}) or .npz")


def read_state_dict_headers(path):
    """{name: header} (``.shape``, ``.dtype``) of a state_dict, no array data read; None if unknown.

    Headers are an ``.npz``'s ``checked_npz.NpyHeader``s or a ``torch.save`` zip's
    ``pytorch_zip.TensorView``s (every view checked against its storage and the expansion cap).
    None: only torch can read the file (legacy format, or objects the torch-free reader does not
    know), so its shapes are known only by loading it (``read_state_dict``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.endswith(TORCH_SUFFIXES):
        try:
            return read_npz_headers(path)
        except NpzError as error:
            raise CheckpointError(str(error)) from error
    torch = _optional_torch()
    if not is_pytorch_zip(path):
        _raise_unless_torch(path, torch)
        return None
    try:
        with PyTorchZip(path) as checkpoint:
            return _state_dict_of(checkpoint.contents, path)
    except PyTorchZipError as error:
        if torch is None or not _needs_torch(error):
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({error.reason})") from error
        return None


def _optional_torch():
    try:
        import torch  # optional dependency
    except ImportError:
        return None
    return torch


def _needs_torch(error):
    """Whether a ``PyTorchZipError`` only means objects outside the torch-free reader's allow-list."""
    return isinstance(error.__cause__, pickle.UnpicklingError) and "unsupported" in error.reason


def _raise_unless_torch(path, torch):
    if torch is None:
        raise CheckpointError(
            f"{path}: not a PyTorch zip checkpoint; files in the legacy (pre-1.6) format need torch "
            "(pip install torch), or save the state_dict as .npz "
            "(numpy.savez(out, **{k: v.numpy() for k, v in state_dict.items()}))")


def _state_dict_of(loaded, path):
    """The state_dict inside a loaded file (its ``state_dict`` entry if it has one): {name: tensor},
    the tensors being ndarrays, ``TensorView``s or torch tensors (other values are dropped)."""
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors), got {type(loaded).__name__}")
    return {name: value for name, value in loaded.items()
            if isinstance(value, (np.ndarray, TensorView)) or hasattr(value, "detach")}


def _read_torch_state_dict(path, max_bytes, expected_shapes=None):
    """A ``torch.save`` file -> {name: float32 array}, compared with ``expected_shapes`` (if given)
    before any array is allocated.

    Zip files (every ``torch.save`` since PyTorch 1.6) go through the checked torch-free reader;
    torch (when installed) reads only the legacy format, or a zip pickle using objects the
    torch-free reader does not know (``torch.load(weights_only=True)`` checks views itself; the
    expansion and size caps of ``pytorch_zip`` are applied to what it loads before conversion).
    """
    torch = _optional_torch()
    if is_pytorch_zip(path):
        try:
            with PyTorchZip(path, max_bytes) as checkpoint:
                views = _state_dict_of(checkpoint.contents, path)
                _raise_if_unexpected(expected_shapes, views, path)
                return {name: np.asarray(array, np.float32) for name, array in checkpoint.read(views).items()}
        except PyTorchZipError as error:
            if torch is None or not _needs_torch(error):
                raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({error.reason})") from error
    else:
        _raise_unless_torch(path, torch)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error})") from error
    tensors = _state_dict_of(loaded, path)
    _raise_if_unexpected(expected_shapes, tensors, path)
    total = 0
    for name, value in tensors.items():  # torch keeps an expanded view as a view: size it before copying it
        view_bytes = 4 * int(value.size if isinstance(value, np.ndarray) else value.numel())  # as float32
        if hasattr(value, "untyped_storage"):
            try:
                check_view_expansion(name, tuple(value.shape), view_bytes, int(value.untyped_storage().nbytes()))
            except ValueError as error:
                raise CheckpointError(f"{path}: {error}") from error
        total += view_bytes
    if total > max_bytes:
        raise CheckpointError(f"{path}: the tensors would take {total} bytes as float32, more than the limit of "
                              f"{max_bytes} bytes")
    return {name: np.asarray(value if isinstance(value, np.ndarray) else value.detach().cpu().float().numpy(),
                             np.float32) for name, value in tensors.items()}


def _raise_if_unexpected(expected_shapes, tensors, path):
    """Compares ``tensors`` ({name: anything with ``.shape``}) with ``expected_shapes`` (None: nothing)."""
    if expected_shapes is not None:
        _raise_if_mismatched(expected_shapes, {name: tuple(value.shape) for name, value in tensors.items()},
                             f"{path}: the weights do not fit the model")


def split_state_dict(state):
    """Strips wrapper prefixes and splits into (deblurring network, RBN) state_dicts."""
    network, reblur = {}, {}
    for name, value in state.items():
        short = name[len("module."):] if name.startswith("module.") else name
        if short.startswith("reblurNet."):
            reblur[short[len("reblurNet."):]] = value
        elif short.startswith("Network."):
            network[short[len("Network."):]] = value
        elif short.startswith(REBLUR_PREFIX):
            reblur[short] = value
        else:
            network[short] = value
    return network, reblur


def _solve_iterations(depth, channels, filter_size, what):
    """Finds (N, k) with depth = N * channels * (2k + 1); prefers ``filter_size`` (default 3)."""
    candidates = [filter_size] if filter_size else [3] + [k for k in range(1, 16, 2) if k != 3]
    for k in candidates:
        per_iteration = channels * (2 * k + 1)
        if depth % per_iteration == 0 and depth > 0:
            return depth // per_iteration, k
    raise CheckpointError(f"cannot infer the {what} IAC size: depth {depth} is not N*{channels}*(2k+1) for k in "
                          f"{candidates}")


def infer_model_config(network_state, reblur_state=None, filter_size=None, iac_mode="checkpoint"):
    """The ``ModelConfig`` implied by a reference state_dict's shapes.

    ``filter_size`` (k) resolves the ambiguity ``D = N * c * (2k + 1)``; by default k = 3 (the
    paper's) is taken whenever it fits.
    """
    try:
        first = network_state["conv1_1.0.weight"]
        encoder_first = network_state["kconv1_1.0.weight"]
        predictor_out = network_state["F.3.weight"]
        dme_out = network_state["DME.3.weight"]
    except KeyError as error:
        raise CheckpointError(f"not an IFAN state_dict: missing {error.args[0]!r}") from error
    try:
        width, kernel_size = int(first.shape[0]), int(first.shape[2])
        channels = 4 * width
        res_num = len({name.split(".")[3] for name in network_state if name.startswith("conv4_4.1.stem.")})
        num_iterations, k = _solve_iterations(int(predictor_out.shape[0]), channels, filter_size, "deblurring")
        values = dict(width=width, kernel_size=kernel_size, res_num=max(res_num, 1), num_iterations=num_iterations,
                      filter_size=k, iac_mode=iac_mode, dual_pixel_input=int(encoder_first.shape[1]) == 6,
                      use_dme=int(dme_out.shape[0]) == 1, use_rbn=bool(reblur_state))
        if reblur_state:
            if "RBF.3.weight" not in reblur_state:
                raise CheckpointError("the reblurring network's weights lack 'RBF.3.weight'")
            n_r, k_r = _solve_iterations(int(reblur_state["RBF.3.weight"].shape[0]), 3, None, "reblurring")
            values.update(reblur_iterations=n_r, reblur_filter_size=k_r)
        return ModelConfig(**values)
    except (IndexError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"the weight shapes do not describe a supported IFAN model ({error})") from error


def to_keras_layout(array, layout):
    """Reference layout -> Keras layout (see ``ifan_tf.model.blocks``)."""
    if layout == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return np.transpose(array, (2, 3, 1, 0))
    if layout == "conv_transpose":  # (in, out, kh, kw) -> (kh, kw, out, in)
        return np.transpose(array, (2, 3, 1, 0))
    return array


def to_reference_layout(array, layout):
    """Keras layout -> reference layout (inverse of ``to_keras_layout``)."""
    if layout in ("conv", "conv_transpose"):
        return np.transpose(array, (3, 2, 0, 1))
    return array


def reference_shapes(module):
    """{reference name: shape in reference layout} of every weight of ``module`` (IFAN or RBN)."""
    return {name: tuple(to_reference_layout(np.zeros(variable.shape, np.float32), layout).shape)
            for name, variable, layout in module.reference_weights()}


def _raise_if_mismatched(expected, actual, headline):
    """Raises ``CheckpointError`` listing all missing, unexpected and mis-shaped names of ``actual``."""
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    misshaped = [f"{name}: checkpoint {tuple(actual[name])}, model {tuple(want)}" for name, want in expected.items()
                 if name in actual and tuple(actual[name]) != tuple(want)]
    if missing or unexpected or misshaped:
        lines = [headline]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"  {label} ({len(items)}): " + ", ".join(shown))
        raise CheckpointError("\n".join(lines))


def check_fits(module, state, source):
    """Raises ``CheckpointError`` unless ``state`` ({name: anything with ``.shape``}) fits ``module``.

    The message lists all missing, unexpected and mis-shaped names at once.
    """
    _raise_if_mismatched(reference_shapes(module), {name: value.shape for name, value in state.items()},
                         f"{source}: the weights do not fit the {type(module).__name__} model ({module.config})")


def check_and_assign(module, state, source):
    """Assigns a reference ``state`` to ``module`` (IFAN or RBN), after checking every name and shape.

    Raises ``CheckpointError`` (see ``check_fits``); nothing is assigned unless everything fits.
    """
    check_fits(module, state, source)
    for name, variable, layout in module.reference_weights():
        variable.assign(to_keras_layout(state[name], layout).astype(np.float32))


def export_state(module):
    """The reference state_dict of ``module``: {reference name: float32 array in reference layout}."""
    return {name: to_reference_layout(np.asarray(variable.numpy(), np.float32), layout)
            for name, variable, layout in module.reference_weights()}
