"""Bring GPT-2 parameters into our CSV layout (see params.py for the layout).

- `import_hf`: a local Hugging Face GPT-2 folder (config.json + model.safetensors, a
  sharded index, or pytorch_model.bin) or a hub name such as "gpt2".
- `download`: `import_hf` from the hub (needs `huggingface_hub` and a network).
- `import_bundle`: a zip or folder of CSV tables under our names or close variants
  (`transformer.` / `model.` prefixes, `_` or `-` for `.`), with or without config.json.

Every import ends by loading the written folder back through the normal CSV reader and
comparing it bit for bit with what was imported, which also builds the binary cache.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cellgpt.engine.safe_files import UnsafeFileError, read_bytes
from cellgpt.locations import gpt2_tokenizer_dir
from cellgpt.weights.checkpoints import read_safetensors, read_safetensors_index, read_torch_bin
from cellgpt.weights.config import GPT2Config
from cellgpt.weights.csv_tables import read_csv, write_atomic
from cellgpt.weights.errors import ParamsError
from cellgpt.weights.files import (
    CHECKPOINT_CAP,
    CONFIG_CAP,
    TOKENIZER_FILE_CAP,
    open_regular,
    read_json,
)
from cellgpt.weights.params import (
    CONFIG_FILE,
    Progress,
    expected_shapes,
    load_params,
    save_params,
)

BUNDLED_TOKENIZER = gpt2_tokenizer_dir()
GPT2_VOCAB_SIZE = 50257
# Buffers in HF state dicts that are not parameters (causal masks).
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


# --- Hugging Face ------------------------------------------------------------------------


def hf_config(src: Path) -> GPT2Config:
    """Our config from a HF config.json, refusing variants our forward cannot reproduce."""
    path = src / CONFIG_FILE
    if not os.path.lexists(path):
        raise ParamsError(f"{src}: no {CONFIG_FILE}; expected a Hugging Face GPT-2 folder")
    try:
        data = read_json(path, CONFIG_CAP, what="config.json")
    except UnsafeFileError as exc:
        raise ParamsError(str(exc)) from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a JSON object")
    # HF's wpe has n_positions rows; old configs also carry an n_ctx that may differ.
    try:
        config = GPT2Config.from_dict({**data, "n_ctx": data.get("n_positions", data.get("n_ctx"))})
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    checks = {
        "model_type": (data.get("model_type", "gpt2") == "gpt2", "must be gpt2"),
        "activation_function": (
            data.get("activation_function", "gelu_new") in ("gelu_new", "gelu_pytorch_tanh"),
            "must be the tanh GELU (gelu_new)",
        ),
        "n_inner": (data.get("n_inner") in (None, 4 * config.n_embd), "must be 4*n_embd"),
        "scale_attn_weights": (data.get("scale_attn_weights", True) is True, "must be true"),
        "scale_attn_by_inverse_layer_idx": (
            not data.get("scale_attn_by_inverse_layer_idx", False),
            "must be false",
        ),
        "tie_word_embeddings": (data.get("tie_word_embeddings", True) is True, "must be true"),
    }
    for key, (ok, why) in checks.items():
        if not ok:
            raise ParamsError(f"{path}: {key}={data.get(key)!r} {why} for cellgpt's GPT-2")
    return config


def read_hf_weights(src: Path) -> dict[str, np.ndarray]:
    """The raw state dict of a HF folder, from the first weights file present."""
    for name in _WEIGHT_FILES:
        path = src / name
        if os.path.lexists(path):  # any entry: its reader says what is wrong with it
            if name == "model.safetensors":
                return read_safetensors(path)
            if name.endswith(".index.json"):
                return read_safetensors_index(path)
            return read_torch_bin(path)
    raise ParamsError(f"{src}: no weights file (looked for {', '.join(_WEIGHT_FILES)})")


def hf_to_tensors(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our tensor names from HF keys: strip `transformer.`, drop buffers and the tied
    lm_head (after checking that it really equals wte)."""
    out: dict[str, np.ndarray] = {}
    lm_head = None
    for key, value in state.items():
        if key == "lm_head.weight":
            lm_head = value
            continue
        name = key.removeprefix("transformer.")
        if name.endswith(_BUFFER_SUFFIXES):
            continue
        out[name] = value
    if lm_head is not None and "wte.weight" in out:
        wte = out["wte.weight"]
        if lm_head.shape != wte.shape or not np.array_equal(lm_head, wte):
            diff = (
                float(np.abs(lm_head.astype(np.float32) - wte).max())
                if lm_head.shape == wte.shape
                else f"shape {lm_head.shape} vs {wte.shape}"
            )
            raise ParamsError(
                f"lm_head.weight differs from wte.weight (max |Δ| {diff}): this checkpoint "
                "does not tie its output head, which cellgpt's tied head cannot represent"
            )
    return out


def _hf_tokenizer(src: Path, scratch: Path, vocab_size: int) -> Path:
    """A folder with encoder.json + vocab.bpe: the checkpoint's own (vocab.json and
    merges.txt are the same files under HF names), else the bundled GPT-2 one."""
    if (src / "vocab.json").is_file() and (src / "merges.txt").is_file():
        for name, ours in (("vocab.json", "encoder.json"), ("merges.txt", "vocab.bpe")):
            data = read_bytes(src / name, TOKENIZER_FILE_CAP, what="tokenizer file")
            write_atomic(scratch / ours, data)
        return scratch
    if (src / "encoder.json").is_file() and (src / "vocab.bpe").is_file():
        return src
    return bundled_tokenizer(vocab_size, src)


def bundled_tokenizer(vocab_size: int, src: Path | str) -> Path:
    """The GPT-2 tokenizer shipped with cellgpt, valid only for a 50257-token vocabulary."""
    if vocab_size != GPT2_VOCAB_SIZE:
        raise ParamsError(
            f"{src}: no tokenizer files (vocab.json + merges.txt, or encoder.json + vocab.bpe) "
            f"and vocab_size {vocab_size} is not GPT-2's {GPT2_VOCAB_SIZE}, so the bundled "
            "GPT-2 tokenizer cannot stand in"
        )
    if not (BUNDLED_TOKENIZER / "encoder.json").is_file():
        raise ParamsError(f"bundled GPT-2 tokenizer missing from {BUNDLED_TOKENIZER}")
    return BUNDLED_TOKENIZER


def import_hf(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, progress: Progress | None = None
) -> Path:
    """Import a local HF GPT-2 folder, or a hub name (downloaded), into `out` as CSVs."""
    source = Path(src)
    if not source.is_dir():
        text = os.fspath(src)
        if _HUB_NAME.match(text) and not source.exists():
            return download(text, out, progress=progress)
        raise ParamsError(f"{src}: not a folder (give a Hugging Face GPT-2 folder or hub name)")
    config = hf_config(source)
    tensors = hf_to_tensors(read_hf_weights(source))
    with tempfile.TemporaryDirectory(prefix="cellgpt-tok-") as scratch:
        tok = _hf_tokenizer(source, Path(scratch), config.vocab_size)
        return _save_and_verify(out, config, tensors, tok, progress)


def download(name: str, out: str | os.PathLike[str], *, progress: Progress | None = None) -> Path:
    """Fetch a GPT-2 checkpoint from the Hugging Face hub and import it into `out`."""
    # Commands that run as written (the folder name is the one the advice tells you to use).
    advice = (
        f"put the model's config.json, model.safetensors, vocab.json and merges.txt in a "
        f"folder ./{Path(name).name} and run `cellgpt weights import-hf ./{Path(name).name} "
        f"--name {Path(name).name}`"
    )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ParamsError(
            f"downloading {name!r} needs huggingface_hub (cellgpt's `hub` extra): run "
            f"`pip install huggingface_hub` and try again; or {advice}"
        ) from None
    patterns = ["config.json", "vocab.json", "merges.txt", "*.safetensors", "*.index.json"]
    try:
        folder = Path(snapshot_download(repo_id=name, allow_patterns=patterns))
        if not any((folder / f).is_file() for f in _WEIGHT_FILES):  # older repos: .bin only
            folder = Path(
                snapshot_download(repo_id=name, allow_patterns=[*patterns, "pytorch_model.bin"])
            )
    except Exception as exc:  # offline, unknown repo, gated, HTTP errors, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParamsError(
            f"could not download {name!r} from the Hugging Face hub ({reason}); "
            f"if this machine is offline, {advice}"
        ) from None
    return import_hf(folder, out, progress=progress)


def _phase(progress: Progress, phase: str) -> Progress:
    """`progress` with each step's name prefixed by the phase ('verify wte.weight')."""
    return lambda done, total, name: progress(done, total, f"{phase} {name}")


def _save_and_verify(
    out: str | os.PathLike[str],
    config: GPT2Config,
    tensors: Mapping[str, np.ndarray],
    tokenizer_dir: Path,
    progress: Progress | None,
) -> Path:
    folder = save_params(out, config, tensors, tokenizer_dir=tokenizer_dir, progress=progress)
    # Reads the CSVs back (and builds the cache): seconds for GPT-2 small, so it reports too.
    verifying = None if progress is None else _phase(progress, "verify")
    if verifying is not None:
        # Starts the phase at 0 whatever the load reports first: a load served whole from
        # the cache reports 100% at once, which would read as the writing phase's end.
        verifying(0, 1, "(reading back)")
    loaded = load_params(folder, progress=verifying)
    for name, array in loaded.tensors.items():
        source = np.asarray(tensors[name], dtype=np.float32)
        if not np.array_equal(array.view(np.uint32), source.view(np.uint32)):
            raise ParamsError(f"{folder}/{name}.csv does not read back exactly (a bug)")
    return folder


# --- CSV bundles -------------------------------------------------------------------------


def _squash(name: str) -> str:
    """Spelling-insensitive key: lower case, separators removed, known prefixes dropped."""
    key = re.sub(r"[._\-]", "", name.lower())
    for prefix in ("transformer", "model"):
        key = key.removeprefix(prefix)
    return key


def _collect_bundle(src: Path, scratch: Path) -> Path:
    """A folder holding the bundle's files: `src` itself or the zip extracted."""
    if src.is_dir():
        return src
    if not zipfile.is_zipfile(src):
        raise ParamsError(f"{src}: not a folder or zip file")
    with zipfile.ZipFile(src) as archive:
        for info in archive.infolist():
            base = Path(info.filename).name
            if info.is_dir() or base.startswith(".") or info.filename.startswith("__MACOSX"):
                continue
            if base.endswith((".csv", ".json", ".bpe")):
                (scratch / base).write_bytes(archive.read(info))
    return scratch


def _bundle_files(folder: Path) -> dict[str, Path]:
    """squashed name → CSV path, anywhere under `folder` (outside .cache)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.csv")):
        if ".cache" in path.parts:
            continue
        key = _squash(path.name[:-4])
        if key in found:
            raise ParamsError(f"{path}: same tensor as {found[key]}")
        found[key] = path
    return found


def _table_size(path: Path) -> tuple[int, int]:
    """(rows, columns) of a CSV from its text, without parsing numbers."""
    with open_regular(path, CHECKPOINT_CAP, what="table") as handle:
        first = handle.readline()
        rows = 1 if first.strip() else 0
        for line in handle:
            rows += bool(line.strip())
    return rows, first.count(b",") + 1


def _infer_config(files: Mapping[str, Path], n_head: int | None, src: Path) -> GPT2Config:
    for key in ("wteweight", "wpeweight"):
        if key not in files:
            raise ParamsError(f"{src}: no config.json and no {key[:3]}.weight table to infer it")
    vocab_size, n_embd = _table_size(files["wteweight"])
    n_ctx, _ = _table_size(files["wpeweight"])
    layers = {int(m.group(1)) for k in files if (m := re.match(r"^h(\d+)[a-z]", k))}
    n_layer = max(layers) + 1 if layers else 0
    if n_head is None:
        if n_embd != 768:
            raise ParamsError(
                f"{src}: no config.json; n_head cannot be inferred for n_embd={n_embd} "
                "(pass n_head, e.g. --n-head)"
            )
        n_head = 12  # GPT-2 small
    return GPT2Config(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_ctx=n_ctx, vocab_size=vocab_size
    )


def _read_bundle_table(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A bundle table, read leniently: a missing final newline is fine, and a 1-D tensor
    may be one row or one column. A transposed matrix gets a message saying so."""
    try:
        return read_csv(path, shape, require_final_newline=False)
    except ParamsError:
        rows, cols = _table_size(path)
        if len(shape) == 1 and (rows, cols) == (shape[0], 1):
            return read_csv(path, (shape[0], 1), require_final_newline=False).reshape(shape)
        if len(shape) == 2 and shape[0] != shape[1] and (rows, cols) == (shape[1], shape[0]):
            raise ParamsError(
                f"{path}: table is {rows}×{cols}, expected {shape[0]}×{shape[1]}; it looks "
                "transposed (cellgpt stores Conv1D [in, out] orientation)"
            ) from None
        raise


def import_bundle(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    n_head: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Import a GPT-2 CSV bundle (zip or folder) into our layout in `out`."""
    source = Path(src)
    if not source.exists():
        raise ParamsError(f"{src}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix="cellgpt-bundle-") as tmp:
        folder = _collect_bundle(source, Path(tmp))
        files = _bundle_files(folder)
        if not files:
            raise ParamsError(f"{src}: no CSV files found")
        configs = [p for p in folder.rglob(CONFIG_FILE) if ".cache" not in p.parts]
        if configs:
            config = GPT2Config.from_json_file(configs[0])
            if n_head is not None and n_head != config.n_head:
                raise ParamsError(f"{configs[0]}: says n_head={config.n_head}, not {n_head}")
        else:
            config = _infer_config(files, n_head, source)
        shapes = expected_shapes(config)
        wanted = {_squash(name): name for name in shapes}
        ignored = {"lmheadweight"}  # the tied head, if a bundle carries it
        extra = sorted(
            str(p.name) for k, p in files.items() if k not in wanted and k not in ignored
        )
        missing = [f"{name}.csv" for key, name in wanted.items() if key not in files]
        if missing or extra:
            parts = [
                f"missing {', '.join(missing[:6])}" if missing else "",
                f"unrecognised {', '.join(extra[:6])}" if extra else "",
            ]
            raise ParamsError(f"{src}: " + "; ".join(p for p in parts if p))
        tensors: dict[str, Any] = {}
        total = sum(files[key].stat().st_size for key in wanted)
        done = 0
        for key, name in wanted.items():
            tensors[name] = _read_bundle_table(files[key], shapes[name])
            done += files[key].stat().st_size
            if progress:
                progress(done, total, name)
        tok = _bundle_tokenizer(folder, source, config.vocab_size)
        return _save_and_verify(out, config, tensors, tok, None)


def _bundle_tokenizer(folder: Path, src: Path, vocab_size: int) -> Path:
    encoders = [p for p in folder.rglob("encoder.json") if ".cache" not in p.parts]
    for encoder in encoders:
        if (encoder.parent / "vocab.bpe").is_file():
            return encoder.parent
    return bundled_tokenizer(vocab_size, src)
