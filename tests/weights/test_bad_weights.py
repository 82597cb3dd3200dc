"""Weight folders others share: every defect is one error naming the file (and row:col for a
bad number), and no partial or unvalidated model is ever used. Complements test_params.py and
test_importers.py.

`python -m pytest tests/weights/test_bad_weights.py -s` prints the counts per category.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cellgpt.cli import main
from cellgpt.weights.cache import MANIFEST, cache_dir_for
from cellgpt.weights.checkpoints import read_safetensors, read_torch_bin
from cellgpt.weights.config import GPT2Config
from cellgpt.weights.params import ParamsError, expected_shapes, load_params, save_params

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "weights_csv" / "gpt2-mini"
MICRO = GPT2Config(n_layer=2, n_head=2, n_embd=8, n_ctx=6, vocab_size=16)

Mutation = Callable[[Path], None]


@dataclass(frozen=True)
class BadFolder:
    category: str
    name: str
    mutate: Mutation
    message: str  # regex the error must match; {d} is the folder


def _edit_cell(file: str, row: int, col: int, value: str) -> Mutation:
    def mutate(d: Path) -> None:
        lines = (d / file).read_text().splitlines(keepends=True)
        cells = lines[row - 1].rstrip("\n").split(",")
        cells[col - 1] = value
        lines[row - 1] = ",".join(cells) + "\n"
        (d / file).write_text("".join(lines))

    return mutate


def _write(file: str, data: bytes) -> Mutation:
    return lambda d: (d / file).write_bytes(data)


def _config(**changes: object) -> Mutation:
    def mutate(d: Path) -> None:
        config = json.loads((d / "config.json").read_text())
        config.update(changes)
        (d / "config.json").write_text(json.dumps(config))

    return mutate


def _truncate(file: str, keep: float) -> Mutation:
    def mutate(d: Path) -> None:
        data = (d / file).read_bytes()
        (d / file).write_bytes(data[: int(len(data) * keep)])

    return mutate


def _drop_last_row(file: str) -> Mutation:
    def mutate(d: Path) -> None:
        lines = (d / file).read_text().splitlines(keepends=True)
        (d / file).write_text("".join(lines[:-1]))

    return mutate


def _replace_with_folder(file: str) -> Mutation:
    def mutate(d: Path) -> None:
        (d / file).unlink()
        (d / file).mkdir()

    return mutate


def _transpose(file: str) -> Mutation:
    def mutate(d: Path) -> None:
        table = np.loadtxt(d / file, delimiter=",", dtype=np.float32, ndmin=2)
        np.savetxt(d / file, table.T, delimiter=",", fmt="%.9g")

    return mutate


W = "h.1.attn.c_attn.weight.csv"  # [8, 24]
B = "h.0.ln_1.bias.csv"  # one row of 8

BAD_FOLDERS = [
    # --- missing or extra files
    BadFolder(
        "files",
        "missing tensor",
        lambda d: (d / "ln_f.bias.csv").unlink(),
        r"missing 1 file\(s\): ln_f\.bias\.csv",
    ),
    BadFolder(
        "files", "missing config", lambda d: (d / "config.json").unlink(), r"no config\.json"
    ),
    BadFolder(
        "files",
        "extra layer file",
        lambda d: shutil.copy(d / B, d / "h.2.ln_1.bias.csv"),
        r"unexpected file\(s\).*h\.2\.ln_1\.bias\.csv",
    ),
    BadFolder(
        "files",
        "folder instead of a file",
        _replace_with_folder(B),
        r"missing 1 file\(s\): h\.0\.ln_1\.bias\.csv",
    ),
    BadFolder(
        "files", "not a folder", lambda d: (shutil.rmtree(d), d.write_text("x")), r"not a folder"
    ),
    # --- wrong shapes
    BadFolder(
        "shape",
        "row missing",
        _drop_last_row("wpe.weight.csv"),
        r"wpe\.weight\.csv:6:1: expected 6 rows, found 5",
    ),
    BadFolder(
        "shape",
        "extra row",
        lambda d: (d / "wpe.weight.csv").write_text(
            (d / "wpe.weight.csv").read_text() + "1,2,3,4,5,6,7,8\n"
        ),
        r"wpe\.weight\.csv:7:1: expected 6 rows, found 7",
    ),
    BadFolder(
        "shape", "short row", _edit_cell(W, 3, 24, ""), r"c_attn\.weight\.csv:3:24: empty cell"
    ),
    BadFolder(
        "shape",
        "long row",
        _edit_cell(B, 1, 8, "1,2"),
        r"ln_1\.bias\.csv:1:9: row 1 has 9 values, expected 8",
    ),
    BadFolder(
        "shape",
        "transposed table",
        _transpose(W),
        r"c_attn\.weight\.csv:1:9: row 1 has 8 values, expected 24",
    ),
    # --- bad numbers
    BadFolder(
        "number", "NaN", _edit_cell(W, 2, 5, "nan"), r"c_attn\.weight\.csv:2:5: not a finite number"
    ),
    BadFolder(
        "number",
        "-inf",
        _edit_cell(W, 8, 24, "-inf"),
        r"c_attn\.weight\.csv:8:24: not a finite number",
    ),
    BadFolder(
        "number",
        "Infinity",
        _edit_cell(B, 1, 1, "Infinity"),
        r"ln_1\.bias\.csv:1:1: not a finite number",
    ),
    BadFolder(
        "number",
        "float32 overflow",
        _edit_cell(B, 1, 3, "1e39"),
        r"ln_1\.bias\.csv:1:3: 1e39 is outside the float32 range",
    ),
    BadFolder(
        "number",
        "text",
        _edit_cell(W, 4, 2, "hello"),
        r"c_attn\.weight\.csv:4:2: not a number: 'hello'",
    ),
    BadFolder(
        "number",
        "formula text",
        _edit_cell(W, 4, 3, "=1+1"),
        r"c_attn\.weight\.csv:4:3: not a number: '=1\+1'",
    ),
    BadFolder(
        "number",
        "hex float",
        _edit_cell(W, 1, 1, "0x1p3"),
        r"c_attn\.weight\.csv:1:1: not a number",
    ),
    BadFolder(
        "number", "decimal comma", _edit_cell(B, 1, 4, "1;5"), r"ln_1\.bias\.csv:1:4: not a number"
    ),
    BadFolder(
        "number", "NUL byte", _edit_cell(B, 1, 2, "1\x00"), r"ln_1\.bias\.csv:1:2: not a number"
    ),
    BadFolder("number", "binary garbage", _write(B, bytes(range(256)) * 4), r"ln_1\.bias\.csv:1:"),
    BadFolder(
        "number",
        "UTF-16 text",
        lambda d: (d / B).write_bytes((d / B).read_text().encode("utf-16")),
        r"ln_1\.bias\.csv:1:",
    ),
    # --- truncated tables
    BadFolder(
        "truncated",
        "half a table",
        _truncate(W, 0.5),
        r"c_attn\.weight\.csv:\d+:\d+: .*(truncated|expected)",
    ),
    BadFolder(
        "truncated",
        "last newline lost",
        _truncate(W, 0.9999),
        r"c_attn\.weight\.csv:8:\d+: .*truncated",
    ),
    BadFolder("truncated", "empty file", _write(B, b""), r"ln_1\.bias\.csv:1:1: empty file"),
    # --- config disagrees with the tensors, or is broken
    BadFolder("config", "n_embd", _config(n_embd=16), r"expected|values"),
    BadFolder("config", "n_layer", _config(n_layer=3), r"missing 12 file\(s\)"),
    BadFolder(
        "config", "n_ctx", _config(n_ctx=7), r"wpe\.weight\.csv:7:1: expected 7 rows, found 6"
    ),
    BadFolder(
        "config",
        "vocab_size",
        _config(vocab_size=15),
        r"wte\.weight\.csv:16:1: expected 15 rows, found 16",
    ),
    BadFolder("config", "n_head", _config(n_head=3), r"n_head|divid"),
    BadFolder("config", "negative size", _config(n_embd=-8), r"n_embd"),
    BadFolder("config", "text size", _config(n_layer="two"), r"n_layer"),
    BadFolder("config", "huge size", _config(vocab_size=10**12), r"vocab_size|expected"),
    BadFolder(
        "config", "not JSON", _write("config.json", b"{not json"), r"config\.json: not valid JSON"
    ),
    BadFolder("config", "JSON list", _write("config.json", b"[1, 2]"), r"config\.json"),
    BadFolder("config", "binary", _write("config.json", b"\xff\xfe\x00garbage"), r"config\.json"),
]


def _micro(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    tensors = {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in expected_shapes(MICRO).items()
    }
    return save_params(folder, MICRO, tensors), tensors


@pytest.mark.parametrize("bad", BAD_FOLDERS, ids=[f"{b.category}:{b.name}" for b in BAD_FOLDERS])
@pytest.mark.parametrize("cached", [False, True], ids=["fresh", "cached"])
def test_bad_folder_is_one_located_error(bad: BadFolder, cached: bool, tmp_path: Path) -> None:
    folder, _ = _micro(tmp_path / "micro")
    if cached:
        load_params(folder)  # a good cache exists before the defect appears
    bad.mutate(folder)
    with pytest.raises(ParamsError) as info:
        load_params(folder)
    message = str(info.value)
    assert str(folder) in message, message
    assert re.search(bad.message, message), message
    assert "Traceback" not in message and len(message) < 600


def test_counts_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    counts = Counter(b.category for b in BAD_FOLDERS)
    counts["cache"] += 6
    counts["checkpoint"] += 4
    counts["cli"] += len(CLI_CASES)
    with capsys.disabled():
        print("\nbad weight folders per category:", dict(sorted(counts.items())))
    assert sum(counts.values()) >= 40


# ---------------------------------------------------------------------------------------
# The binary cache: stale, corrupt or shipped along with the folder, it is never trusted.


@pytest.fixture
def cached_micro(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    folder, tensors = _micro(tmp_path / "micro")
    assert load_params(folder).cache_hits == 0
    assert load_params(folder).cache_hits == len(tensors)
    return folder, tensors


def _check_exact(folder: Path, tensors: dict[str, np.ndarray], hits: int) -> None:
    params = load_params(folder)
    assert params.cache_hits == hits
    for name, array in tensors.items():
        assert np.array_equal(params[name], array), name


def test_corrupt_npy_files_are_rebuilt(cached_micro: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, tensors = cached_micro
    cache = cache_dir_for(folder)
    (cache / "wte.weight.npy").write_bytes(b"\x93NUMPY garbage")
    npy = cache / "wpe.weight.npy"
    npy.write_bytes(npy.read_bytes()[:-7])  # truncated
    (cache / "ln_f.bias.npy").unlink()
    _check_exact(folder, tensors, hits=len(tensors) - 3)
    _check_exact(folder, tensors, hits=len(tensors))


def test_a_pickled_npy_is_never_loaded(cached_micro: tuple[Path, dict[str, np.ndarray]]) -> None:
    folder, tensors = cached_micro
    marker = folder / "pwned"
    npy = cache_dir_for(folder) / "ln_f.weight.npy"
    # An object array would unpickle on load; allow_pickle=False refuses it.
    payload = np.array([_Boom(str(marker))], dtype=object)
    with open(npy, "wb") as fh:
        np.lib.format.write_array(fh, payload, allow_pickle=True)
    manifest = json.loads((cache_dir_for(folder) / MANIFEST).read_text())
    from cellgpt.weights.cache import cheap_hash

    manifest["entries"]["ln_f.weight"].update(npy_size=npy.stat().st_size, npy_hash=cheap_hash(npy))
    (cache_dir_for(folder) / MANIFEST).write_text(json.dumps(manifest))
    _check_exact(folder, tensors, hits=len(tensors) - 1)
    assert not marker.exists()


class _Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def test_stale_cache_after_an_edit_keeping_size_and_mtime(
    cached_micro: tuple[Path, dict[str, np.ndarray]],
) -> None:
    folder, tensors = cached_micro
    csv = folder / "ln_f.bias.csv"
    stat = csv.stat()
    text = csv.read_text()
    first = text.split(",")[0]
    edited = ("9" if not first.startswith("9") else "8") + first[1:]
    csv.write_text(edited + text[len(first) :])
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    params = load_params(folder)
    assert params.cache_hits == len(tensors) - 1
    assert params["ln_f.bias"][0] == np.float32(edited)


def test_a_cache_shipped_inside_a_copied_folder_is_not_trusted(
    cached_micro: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    folder, tensors = cached_micro
    # Poison the cache with NaN, fix up its manifest, and ship it with mtimes kept (cp -a, tar).
    npy = cache_dir_for(folder) / "h.0.mlp.c_fc.bias.npy"
    poisoned = np.full(expected_shapes(MICRO)["h.0.mlp.c_fc.bias"], np.nan, dtype="<f4")
    with open(npy, "wb") as fh:
        np.lib.format.write_array(fh, poisoned)
    from cellgpt.weights.cache import cheap_hash

    manifest = json.loads((cache_dir_for(folder) / MANIFEST).read_text())
    entry = manifest["entries"]["h.0.mlp.c_fc.bias"]
    entry.update(npy_size=npy.stat().st_size, npy_hash=cheap_hash(npy))
    (cache_dir_for(folder) / MANIFEST).write_text(json.dumps(manifest))
    shared = tmp_path / "shared"
    shutil.copytree(folder, shared, copy_function=shutil.copy2)
    params = load_params(shared)
    assert params.cache_hits == 0  # copied files: every table is parsed and checked again
    assert np.isfinite(params["h.0.mlp.c_fc.bias"]).all()
    _check_exact(shared, tensors, hits=len(tensors))


def test_garbage_manifest_and_cache_folder_as_a_file(
    cached_micro: tuple[Path, dict[str, np.ndarray]],
) -> None:
    folder, tensors = cached_micro
    (cache_dir_for(folder) / MANIFEST).write_bytes(b"\x00\xff not json")
    _check_exact(folder, tensors, hits=0)
    shutil.rmtree(cache_dir_for(folder))
    cache_dir_for(folder).write_text("not a folder")
    _check_exact(folder, tensors, hits=0)


# ---------------------------------------------------------------------------------------
# Checkpoints: only safe loaders; an arbitrary pickle is refused and never runs.


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_checkpoints_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for i, payload in enumerate([_Boom(str(marker)), {"wte.weight": _Boom(str(marker))}]):
        path = tmp_path / f"evil{i}.bin"
        path.write_bytes(pickle.dumps(payload))
        with pytest.raises(ParamsError, match="refused: not a plain weights file"):
            read_torch_bin(path)
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ParamsError, match="refused"):
        read_torch_bin(path)
    assert not marker.exists()


def test_safetensors_header_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(ParamsError, match="header length"):
        read_safetensors(path)


# ---------------------------------------------------------------------------------------
# Through the CLI on a copy of the bundled model: exit 2, one line on stderr, no output.

CLI_CASES = {
    "NaN in a block": _edit_cell("h.3.ln_1.bias.csv", 1, 3, "nan"),
    "text in wte": _edit_cell("wte.weight.csv", 17, 5, "oops"),
    "truncated wte": _truncate("wte.weight.csv", 0.5),
    "config n_embd": _config(n_embd=32),
    "missing ln_f": lambda d: (d / "ln_f.bias.csv").unlink(),
    "broken encoder.json": _write("encoder.json", b'{"a": 1,'),
}
CLI_EXPECT = {
    "NaN in a block": r"h\.3\.ln_1\.bias\.csv:1:3: not a finite number",
    "text in wte": r"wte\.weight\.csv:17:5: not a number: 'oops'",
    "truncated wte": r"wte\.weight\.csv:\d+:\d+: .*truncated",
    "config n_embd": r"wte\.weight\.csv:1:33: row 1 has 64 values, expected 32",
    "missing ln_f": r"missing 1 file\(s\): ln_f\.bias\.csv",
    "broken encoder.json": r"encoder\.json.*(JSON|json)",
}


@pytest.fixture(scope="module")
def mini_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("mini") / "gpt2-mini"
    shutil.copytree(MINI, dest)
    return dest


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_refuses_a_bad_model_without_using_it(
    case: str, mini_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(mini_copy, folder)
    CLI_CASES[case](folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "ROMEO:", "--model", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert out.getvalue() == ""  # no prediction from a partial model
    assert re.search(CLI_EXPECT[case], err), err
    assert err.startswith("cellgpt: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
