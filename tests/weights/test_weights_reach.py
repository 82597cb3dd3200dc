"""Model folders from strangers and the weights cache: every file is read without blocking,
bounded and as a regular file; sizes a config.json declares are bounded before anything is
allocated; deep JSON is a located error; links planted in the cache are never written through.

Cases come from `adversarial/weights_files.tsv` and `adversarial/weights_cache_links.tsv`;
`pytest tests/weights/test_weights_reach.py -s` prints counts per class.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from cellgpt import locations
from cellgpt.engine.errors import CellEvalError
from cellgpt.gpt2.functions import load_tokenizer, load_weights
from cellgpt.tokenizer.bpe import Tokenizer, TokenizerError
from cellgpt.weights.cache import MANIFEST, ParamCache, cache_dir_for
from cellgpt.weights.config import GPT2Config
from cellgpt.weights.params import ParamsError, expected_shapes, load_params, save_params

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "weights_csv" / "gpt2-mini"
ADVERSARIAL = REPO / "tests" / "adversarial"
MICRO = GPT2Config(n_layer=2, n_head=2, n_embd=8, n_ctx=6, vocab_size=16)
TOKENIZER_FILES = ("encoder.json", "vocab.bpe", "tokenizer_config.json")


def _rows(name: str) -> list[list[str]]:
    lines = (ADVERSARIAL / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


FILE_CASES = _rows("weights_files.tsv")
LINK_CASES = _rows("weights_cache_links.tsv")


@contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened without O_NONBLOCK waits forever)."""

    def fire(*_: object) -> None:
        raise TimeoutError(f"took more than {seconds} s (blocked?)")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _tree(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int, int]]:
    """path → (mode, size, mtime_ns) of everything under root, links not followed."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder) / d != skip]  # the expected writes
        for name in dirs + files:
            st = os.lstat(Path(folder) / name)
            found[str(Path(folder) / name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def _micro_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in expected_shapes(MICRO).items()
    }


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A fresh CELLGPT_HOME, a micro model folder (granted) and a sentinel file and folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("CELLGPT_HOME", str(home))
    model = save_params(tmp_path / "model", MICRO, _micro_tensors(), tokenizer_dir=MINI)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("do not touch\n")
    locations.revoke_all_grants()
    locations.grant_folder(model)
    yield {"home": home, "model": model, "sentinel": sentinel, "root": tmp_path}
    locations.revoke_all_grants()


def _plant(folder: Path, file: str, planted: str, sentinel: Path) -> None:
    path = folder / file
    kind, _, arg = planted.partition(":")
    if kind == "config":
        config = {**MICRO.to_dict(), **json.loads(arg)}
        path.write_text(json.dumps(config))
        return
    if os.path.lexists(path):
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link":
        path.symlink_to(arg.replace("{SENTINEL}", str(sentinel / "keep.txt")))
    elif kind == "dir":
        path.mkdir()
    elif kind == "deep":
        path.write_text("[" * int(arg) + "]" * int(arg))
    elif kind == "pad":
        shutil.copy(MINI / "ln_f.bias.csv", path)  # placeholder, replaced below
        path.write_bytes(b"1" + b",1" * 7 + b"\n" + b"\n" * int(arg))
    elif kind == "big":
        path.write_bytes((b"1," * (int(arg) // 2))[:-1] + b"\n")
    else:
        raise AssertionError(f"unknown plant {planted!r}")


def _load(folder: Path, file: str) -> str:
    """The error of the cell that reads `file` (load_weights, or load_tokenizer)."""
    fn = load_tokenizer if file in TOKENIZER_FILES else load_weights
    with pytest.raises(CellEvalError) as caught:
        fn(str(folder))
    return str(caught.value)


def test_hostile_files_in_a_model_folder(world: dict[str, Path]) -> None:
    counts: Counter[str] = Counter()
    for category, file, planted, message in FILE_CASES:
        folder = world["root"] / f"case{sum(counts.values())}"
        shutil.copytree(world["model"], folder)
        locations.grant_folder(folder)
        _plant(folder, file, planted, world["sentinel"])
        before = _tree(world["root"], skip=world["home"])
        with _deadline(20):
            error = _load(folder, file)
        assert re.search(message, error, re.IGNORECASE), (file, planted, error)
        assert str(folder) in error or file in error, error  # names the file
        assert _tree(world["root"], skip=world["home"]) == before, (file, planted)
        counts[category] += 1
    print(f"\nhostile model-folder files per class: {dict(counts)}")
    assert set(counts) == {"special", "huge", "deep", "size"}


@pytest.mark.parametrize("file", ["config.json", "wte.weight.csv", "encoder.json"])
def test_a_link_out_of_the_folder_is_refused(world: dict[str, Path], file: str) -> None:
    """A stranger's link to some other file of yours is never read (a bad table's error
    would quote its first cell), and nothing is written."""
    _plant(world["model"], file, "link:{SENTINEL}", world["sentinel"])
    before = _tree(world["root"], skip=world["home"])
    with _deadline(20):
        error = _load(world["model"], file)
    assert re.search(rf"{re.escape(file)}: a link to .*keep\.txt, outside", error), error
    assert "do not touch" not in error  # the content is never quoted back
    assert _tree(world["root"], skip=world["home"]) == before


def test_a_link_that_stays_inside_the_folder_is_followed(world: dict[str, Path]) -> None:
    model = world["model"]
    (model / "tables").mkdir()
    os.replace(model / "wte.weight.csv", model / "tables" / "wte.csv")
    (model / "wte.weight.csv").symlink_to(Path("tables") / "wte.csv")
    assert np.array_equal(load_params(model)["wte.weight"], _micro_tensors()["wte.weight"])


def test_deep_json_in_the_direct_loaders_is_located(tmp_path: Path) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    (tmp_path / "config.json").write_text(deep)
    with pytest.raises(ParamsError, match=r"config\.json.*nested too deeply"):
        GPT2Config.from_json_file(tmp_path / "config.json")
    shutil.copy(MINI / "vocab.bpe", tmp_path / "vocab.bpe")
    (tmp_path / "encoder.json").write_text(deep)
    with pytest.raises(TokenizerError, match=r"encoder\.json.*nested too deeply"):
        Tokenizer.from_dir(tmp_path)


def test_config_bounds_allow_gpt2_xl_and_refuse_more() -> None:
    xl = GPT2Config(n_layer=48, n_head=25, n_embd=1600, n_ctx=1024, vocab_size=50257)
    assert 1.5e9 < xl.n_params < 1.6e9
    with pytest.raises(ParamsError, match="parameters"):
        GPT2Config(n_layer=200, n_head=16, n_embd=16384, n_ctx=1024, vocab_size=50257)


def test_a_table_is_sized_against_its_shape_before_parsing(world: dict[str, Path]) -> None:
    path = world["model"] / "ln_f.bias.csv"
    path.write_bytes(b" " * 10_000 + path.read_bytes())  # right numbers, absurd padding
    with pytest.raises(ParamsError, match=r"ln_f\.bias\.csv.*far more than a table of 1×8"):
        load_params(world["model"])


# --- the cache ----------------------------------------------------------------------------


def _level(model: Path, level: str) -> Path:
    cache = cache_dir_for(model)
    return {
        "root": locations.cache_dir(),
        "weights": locations.cache_dir() / "weights",
        "model": cache,
        "manifest": cache / MANIFEST,
        "npy": cache / "wte.weight.npy",
    }[level]


def _plant_link(path: Path, target: str, sentinel: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "dir":
        path.symlink_to(sentinel)
    elif target == "file":
        path.symlink_to(sentinel / "keep.txt")
    elif target == "dangling":
        path.symlink_to(sentinel / "nowhere" / "x")
    elif target == "loop":
        path.symlink_to(path)


def test_links_planted_in_the_cache_are_never_followed(world: dict[str, Path]) -> None:
    expected = _micro_tensors()
    counts: Counter[str] = Counter()
    for category, level, target in LINK_CASES:
        load_params(world["model"])  # a complete cache to plant into
        link = _level(world["model"], level)
        _plant_link(link, target, world["sentinel"])
        sentinel_before = _tree(world["sentinel"])
        sentinel_bytes = (world["sentinel"] / "keep.txt").read_bytes()
        outside_before = _tree(world["root"], skip=world["home"])
        with _deadline(30):
            params = load_params(world["model"])
        for name, array in expected.items():
            assert np.array_equal(params[name], array), (level, target, name)
        assert _tree(world["sentinel"]) == sentinel_before, (level, target)
        assert (world["sentinel"] / "keep.txt").read_bytes() == sentinel_bytes
        assert _tree(world["root"], skip=world["home"]) == outside_before, (level, target)
        assert not link.is_symlink(), f"{level}/{target}: the link is still there"
        cache = ParamCache(world["model"])
        assert cache.safe and cache.writable
        assert load_params(world["model"]).cache_hits == len(expected)  # rebuilt, and used
        counts[f"{category}:{level}"] += 1
    print(f"\ncache links per level: {dict(counts)}")
    assert len(counts) == 5


def test_an_inspecting_cache_never_reads_through_a_link(world: dict[str, Path]) -> None:
    load_params(world["model"])
    model_cache = cache_dir_for(world["model"])
    shutil.copytree(model_cache, world["sentinel"] / "copy")
    shutil.rmtree(model_cache)
    model_cache.symlink_to(world["sentinel"] / "copy")  # a complete cache, but via a link
    inspected = ParamCache(world["model"], create=False)
    assert not inspected.safe and inspected.entries == {}
    assert model_cache.is_symlink()  # inspecting changes nothing


def test_the_cache_still_speeds_up_the_second_load(world: dict[str, Path]) -> None:
    first = load_params(world["model"])
    second = load_params(world["model"])
    assert first.cache_hits == 0
    assert second.cache_hits == len(expected_shapes(MICRO))


def test_a_deep_or_huge_manifest_is_ignored_and_rebuilt(world: dict[str, Path]) -> None:
    load_params(world["model"])
    manifest = cache_dir_for(world["model"]) / MANIFEST
    for junk in (b"[" * 200_000 + b"]" * 200_000, b" " * (17 << 20)):
        manifest.write_bytes(junk)
        with _deadline(30):
            params = load_params(world["model"])
        assert params.cache_hits == 0  # nothing trusted from it
        assert json.loads(manifest.read_text())["format"] == 1  # rewritten
        assert load_params(world["model"]).cache_hits == len(expected_shapes(MICRO))


@pytest.mark.parametrize(
    ("file", "planted"),
    [
        ("model.safetensors", "link:/dev/zero"),
        ("model.safetensors", "fifo"),
        ("pytorch_model.bin", "link:/dev/urandom"),
        ("config.json", "fifo"),
        ("model.safetensors.index.json", "fifo"),
    ],
)
def test_importers_refuse_special_files_at_once(
    tmp_path: Path, file: str, planted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellgpt.weights.importers import import_hf

    monkeypatch.setenv("CELLGPT_HOME", str(tmp_path / "home"))
    src = tmp_path / "hf"
    src.mkdir()
    config = {"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8, "n_positions": 4}
    (src / "config.json").write_text(json.dumps({**config, "vocab_size": 16}))
    (src / "merges.txt").write_text("#version: 0.2\n")
    _plant(src, file, planted, tmp_path)
    with _deadline(20), pytest.raises((ParamsError, OSError)) as caught:
        import_hf(src, tmp_path / "out")
    assert re.search(rf"{re.escape(file)}: .*(pipe|device|regular)", str(caught.value))
    assert not (tmp_path / "out" / "config.json").exists()


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo"])
def test_the_readers_themselves_refuse_devices_and_pipes(tmp_path: Path, target: str) -> None:
    """Below the folder rule: each reader goes through safe_files on its own."""
    from cellgpt.tokenizer.bpe import load_encoder, load_merges
    from cellgpt.weights.csv_tables import read_csv

    def plant(name: str) -> Path:
        path = tmp_path / name
        os.mkfifo(path) if target == "fifo" else path.symlink_to(target)
        return path

    why = r"(pipe|device|regular)"
    with _deadline(20):
        with pytest.raises((ParamsError, OSError), match=rf"t\.csv.*{why}"):
            read_csv(plant("t.csv"), (4, 4))
        with pytest.raises(ParamsError, match=rf"config\.json.*{why}"):
            GPT2Config.from_json_file(plant("config.json"))
        with pytest.raises(TokenizerError, match=rf"encoder\.json.*{why}"):
            load_encoder(plant("encoder.json"))
        with pytest.raises(TokenizerError, match=rf"vocab\.bpe.*{why}"):
            load_merges(plant("vocab.bpe"))
