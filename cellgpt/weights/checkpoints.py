"""Read Hugging Face checkpoint files into float32 numpy arrays.

- `*.safetensors` is parsed here with numpy alone (no torch): 8-byte little-endian header
  length, a JSON header {name: {dtype, shape, data_offsets}}, then raw little-endian data.
  F32, F16, BF16 and F64 become float32; the file is memory-mapped, not read whole.
- `pytorch_model.bin` is a pickle; it is only ever opened with
  `torch.load(weights_only=True)`, which refuses pickles that carry arbitrary objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cellgpt.engine.safe_files import UnsafeFileError
from cellgpt.weights.errors import ParamsError
from cellgpt.weights.files import CHECKPOINT_CAP, CONFIG_CAP, open_regular, parse_json, read_json

_HEADER_LIMIT = 100 << 20  # a real header is kilobytes; refuse absurd lengths
_FLOAT_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}
_OTHER_DTYPES = {"I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All float tensors of a .safetensors file as float32 arrays (integer/bool tensors,
    such as attention-mask buffers, are returned in their own dtype)."""
    name = os.fspath(path)
    with _open_checkpoint(name) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        if len(head) < 8:
            raise ParamsError(f"{name}: too short to be a safetensors file")
        length = int.from_bytes(head, "little")
        if length > min(_HEADER_LIMIT, size - 8):
            raise ParamsError(f"{name}: bad safetensors header length {length}")
        header = parse_json(handle.read(length), f"{name}: safetensors header")
        # Mapped through the descriptor we checked: a regular file, never a FIFO or device.
        raw = np.memmap(handle, dtype=np.uint8, mode="r", shape=(size,))
    if not isinstance(header, dict):
        raise ParamsError(f"{name}: safetensors header is not a JSON object")
    data_start = 8 + length
    out: dict[str, np.ndarray] = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        out[key] = _tensor(name, key, info, raw, data_start, size)
    return out


def _tensor(
    name: str, key: str, info: object, raw: np.ndarray, start: int, size: int
) -> np.ndarray:
    try:
        assert isinstance(info, dict)
        dtype_name = info["dtype"]
        shape = tuple(int(d) for d in info["shape"])
        begin, end = (int(x) for x in info["data_offsets"])
    except (AssertionError, KeyError, TypeError, ValueError):
        raise ParamsError(f"{name}: malformed header entry for {key!r}") from None
    code = _FLOAT_DTYPES.get(dtype_name) or _OTHER_DTYPES.get(dtype_name)
    if code is None:
        raise ParamsError(f"{name}: tensor {key!r} has unsupported dtype {dtype_name}")
    dtype = np.dtype(code)
    count = int(np.prod(shape, dtype=np.int64))
    if not 0 <= begin <= end or start + end > size or end - begin != count * dtype.itemsize:
        raise ParamsError(f"{name}: tensor {key!r} has inconsistent data offsets")
    data = raw[start + begin : start + end].view(dtype).reshape(shape)
    if dtype_name == "BF16":  # bfloat16 is the top half of a float32
        return (data.astype(np.uint32) << 16).view(np.float32)
    if dtype_name in _FLOAT_DTYPES:
        return np.array(data, dtype=np.float32)  # a copy: independent of the mapped file
    return np.array(data)


def _open_checkpoint(name: str) -> BinaryIO:
    try:
        return open_regular(name, CHECKPOINT_CAP, what="checkpoint")
    except UnsafeFileError as exc:
        raise ParamsError(str(exc)) from None


def read_safetensors_index(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A sharded checkpoint: `model.safetensors.index.json` names a file per tensor."""
    index_path = Path(path)
    try:
        weight_map = read_json(index_path, CONFIG_CAP, what="safetensors index")["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParamsError(f"{index_path}: not a valid safetensors index ({exc})") from None
    out: dict[str, np.ndarray] = {}
    for shard in shards:
        if not isinstance(shard, str) or Path(shard).name != shard or shard.startswith("."):
            raise ParamsError(f"{index_path}: shard {shard!r} is not a file name in its folder")
        out.update(read_safetensors(index_path.parent / shard))
    return out


def read_torch_bin(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A `pytorch_model.bin` state dict, loaded with torch's weights-only unpickler."""
    name = os.fspath(path)
    try:
        import torch
    except ImportError:
        raise ParamsError(
            f"{name}: reading pytorch_model.bin needs PyTorch (pip install torch), "
            "or convert the checkpoint to model.safetensors"
        ) from None
    try:
        with _open_checkpoint(name) as handle:
            state = torch.load(handle, map_location="cpu", weights_only=True)
    except (UnsafeFileError, ParamsError):
        raise
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... here
        raise ParamsError(
            f"{name}: refused: not a plain weights file; only tensors are accepted, never "
            f"arbitrary pickled objects ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ParamsError(f"{name}: expected a state dict, found {type(state).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            out[key] = tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
    return out
