"""Hand-crafted hostile checkpoints (torch.save zips, .npz) and a memory-capped reader process.

The torch zip pickles are assembled opcode by opcode, so tests can declare any storage size,
offset, sizes and strides without torch, exactly as a malicious file would.
"""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDRESS_SPACE_LIMIT = 1 << 30  # the reader process may not map more than 1 GiB


def _plain(value):
    """Pickle opcodes of a plain Python value (ints, strings, tuples), without PROTO and STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def storage(key, numel, storage_type="FloatStorage"):
    """Opcodes loading persistent storage ``key`` declared to hold ``numel`` elements."""
    return (b"(" + _plain("storage") + _global("torch", storage_type) + _plain(key) + _plain("cpu")
            + _plain(numel) + b"tQ")


def tensor(storage_opcodes, offset, size, stride):
    """Opcodes of ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, None)``."""
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage_opcodes + _plain(offset)
            + _plain(tuple(size)) + _plain(tuple(stride)) + b"\x89" + b"N" + b"tR")


def state_dict_pickle(tensors):
    """A pickle of ``{name: tensor}`` from ``{name: tensor opcodes}``."""
    body = b"".join(_plain(name) + opcodes + b"s" for name, opcodes in tensors.items())
    return b"\x80\x02}" + body + b"."


def write_torch_zip(path, tensors, storages, prefix="archive", bomb_members=()):
    """Writes a torch.save-style zip.

    Args:
      tensors: {name: tensor opcodes} for ``data.pkl``.
      storages: {key: raw bytes} stored uncompressed as ``<prefix>/data/<key>``.
      bomb_members: {key: n_bytes} members of ``n_bytes`` zeros, deflated (a few MB for 1 GiB).
    """
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{prefix}/data.pkl", state_dict_pickle(tensors))
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"{prefix}/data/{key}", raw)
        for key, n_bytes in dict(bomb_members).items():
            info = zipfile.ZipInfo(f"{prefix}/data/{key}")
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                chunk = bytes(1 << 20)
                for start in range(0, n_bytes, len(chunk)):
                    member.write(chunk[: min(len(chunk), n_bytes - start)])
    return str(path)


def write_npz_member(archive, name, header_shape, payload, dtype="<f4", declared_size=None):
    """Adds ``name.npy`` whose header declares ``header_shape`` with ``payload`` bytes of data.

    With ``declared_size``, the data is that many zero bytes, deflated (a lying-small member).
    """
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(header_shape)}
    prefix = bytearray(b"\x93NUMPY\x01\x00")
    text = repr(header).encode("latin1")
    text += b" " * ((64 - (len(prefix) + 2 + len(text) + 1) % 64) % 64) + b"\n"
    prefix += len(text).to_bytes(2, "little") + text
    info = zipfile.ZipInfo(f"{name}.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        member.write(bytes(prefix))
        if declared_size is None:
            member.write(payload)
        else:
            chunk = bytes(1 << 20)
            for start in range(0, declared_size, len(chunk)):
                member.write(chunk[: min(len(chunk), declared_size - start)])


def read_in_capped_process(function, path):
    """Runs ``function(path)`` (e.g. ``"ifan_tf.weights.pytorch_zip:read_pytorch_zip"``) in a child process
    whose address space is capped at ``ADDRESS_SPACE_LIMIT``.

    Returns {"outcome": "ok" | "error" | "crash", "type": exception type, "message": text}; a
    read that tries to allocate gigabytes dies with MemoryError, a wild read with a signal.
    """
    module, name = function.split(":")
    script = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE_LIMIT}, {ADDRESS_SPACE_LIMIT}))
from {module} import {name}
try:
    result = {name}(sys.argv[1])
    print(json.dumps({{"outcome": "ok", "names": sorted(result)}}))
except BaseException as error:
    print(json.dumps({{"outcome": "error", "type": type(error).__name__, "message": str(error)}}))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env,
                            timeout=120, cwd=REPO)
    if result.returncode != 0 or not result.stdout.strip():
        return {"outcome": "crash", "type": f"exit {result.returncode}", "message": result.stderr[-2000:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def float_bytes(values):
    return np.asarray(values, "<f4").tobytes()


def write_state_dict_zip(path, arrays, replaced=None):
    """A torch.save-style zip of ``arrays`` ({name: float array}, each on its own contiguous storage),
    with the views of ``replaced`` ({name: (storage floats, offset, sizes, strides)}) declared instead
    of those names' arrays, on a storage holding that many floats (0, 1, 2, ...)."""
    tensors, storages = {}, {}
    for index, (name, array) in enumerate(arrays.items()):
        key = str(index)
        if replaced and name in replaced:
            numel, offset, size, stride = replaced[name]
            storages[key] = float_bytes(np.arange(numel))
        else:
            array = np.ascontiguousarray(array, "<f4")
            numel, offset, size = array.size, 0, array.shape
            stride = tuple(step // 4 for step in array.strides)
            storages[key] = array.tobytes()
        tensors[name] = tensor(storage(key, numel), offset, size, stride)
    return write_torch_zip(path, tensors, storages)
