"""Importers: HF folders (safetensors, weights-only pickles), CSV bundles, hub, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from cellgpt.cli import main
from cellgpt.gpt2.reference import reference_forward
from cellgpt.weights.checkpoints import read_safetensors
from cellgpt.weights.importers import BUNDLED_TOKENIZER, download, import_bundle, import_hf
from cellgpt.weights.params import Params, ParamsError, load_params, write_csv


def _hf_tensors(model: Any) -> dict[str, np.ndarray]:
    """The model's parameters under our names (independent of the importer's mapping)."""
    return {
        name.removeprefix("transformer."): p.detach().numpy()
        for name, p in model.named_parameters()
        if name != "lm_head.weight"
    }


def _assert_same(params: Params, expected: dict[str, np.ndarray]) -> None:
    assert sorted(params.tensors) == sorted(expected)
    for name, array in expected.items():
        assert np.array_equal(params[name], array), name


def test_import_hf_safetensors_is_exact(hf_tiny: Any, params_tiny: Params) -> None:
    _assert_same(params_tiny, _hf_tensors(hf_tiny.model))
    assert params_tiny.config.n_ctx == 128 and params_tiny.config.n_head == 4
    # No tokenizer in the HF folder and vocab 50257: the bundled GPT-2 one is copied.
    folder = params_tiny.path
    assert folder is not None
    expected = (BUNDLED_TOKENIZER / "encoder.json").read_bytes()
    assert (folder / "encoder.json").read_bytes() == expected


def test_safetensors_reader_matches_reference_library(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        "a": rng.standard_normal((3, 5)).astype(np.float32),
        "b": rng.standard_normal(7).astype(np.float16),
        "c": rng.standard_normal((2, 2)).astype(np.float64),
        "mask": np.tril(np.ones((4, 4), dtype=np.uint8)),
    }
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"format": "np"})
    ours = read_safetensors(tmp_path / "m.safetensors")
    ref = load_file(str(tmp_path / "m.safetensors"))
    for key, value in ref.items():
        expected = value.astype(np.float32) if value.dtype.kind == "f" else value
        assert ours[key].dtype == expected.dtype
        assert np.array_equal(ours[key], expected)


def test_safetensors_bf16(tmp_path: Path) -> None:
    """torch writes bfloat16; our numpy reader widens it to the same float32 values."""
    from safetensors.torch import save_file as save_torch

    values = torch.randn(4, 6).to(torch.bfloat16)
    save_torch({"w": values}, str(tmp_path / "bf.safetensors"))
    ours = read_safetensors(tmp_path / "bf.safetensors")["w"]
    assert np.array_equal(ours, values.float().numpy())


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x05\x00\x00", (10**9).to_bytes(8, "little") + b"{}", b"\x04" + b"\0" * 7 + b"nope"],
)
def test_safetensors_garbage_is_a_clear_error(tmp_path: Path, blob: bytes) -> None:
    (tmp_path / "x.safetensors").write_bytes(blob)
    with pytest.raises(ParamsError, match=r"x\.safetensors"):
        read_safetensors(tmp_path / "x.safetensors")


def _hf_folder_with_bin(hf_tiny: Any, dest: Path, state: dict[str, Any]) -> Path:
    dest.mkdir()
    shutil.copy(hf_tiny.path / "config.json", dest / "config.json")
    torch.save(state, dest / "pytorch_model.bin")
    return dest


def test_import_pytorch_bin_with_weights_only(hf_tiny: Any, tmp_path: Path) -> None:
    src = _hf_folder_with_bin(hf_tiny, tmp_path / "bin", hf_tiny.model.state_dict())
    out = import_hf(src, tmp_path / "out")
    _assert_same(load_params(out), _hf_tensors(hf_tiny.model))


class _Payload:
    """A pickle that would create a file if it were ever unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_with_arbitrary_objects_is_refused(hf_tiny: Any, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = dict(hf_tiny.model.state_dict())
    state["extra"] = _Payload(marker)
    src = _hf_folder_with_bin(hf_tiny, tmp_path / "evil", state)
    with pytest.raises(ParamsError, match="refused"):
        import_hf(src, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_untied_lm_head_is_refused(hf_tiny: Any, tmp_path: Path) -> None:
    state = {k: v.clone() for k, v in hf_tiny.model.state_dict().items()}
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    src = _hf_folder_with_bin(hf_tiny, tmp_path / "untied", state)
    with pytest.raises(ParamsError, match=r"lm_head\.weight differs from wte\.weight"):
        import_hf(src, tmp_path / "out")


def test_hf_tokenizer_files_are_renamed(hf_tiny: Any, tmp_path: Path) -> None:
    src = tmp_path / "withtok"
    shutil.copytree(hf_tiny.path, src)
    (src / "vocab.json").write_text('{"a": 0}')
    (src / "merges.txt").write_text("#version: 0.2\na b\n")
    out = import_hf(src, tmp_path / "out")
    assert (out / "encoder.json").read_text() == '{"a": 0}'
    assert (out / "vocab.bpe").read_text() == "#version: 0.2\na b\n"


def test_non_gpt2_vocab_without_tokenizer_is_refused(hf_tiny: Any, tmp_path: Path) -> None:
    src = tmp_path / "odd"
    src.mkdir()
    config = json.loads((hf_tiny.path / "config.json").read_text())
    config["vocab_size"] = 100
    (src / "config.json").write_text(json.dumps(config))
    state = {k: v[:100] if k.endswith(("wte.weight", "lm_head.weight")) else v
             for k, v in hf_tiny.model.state_dict().items()}  # fmt: skip
    torch.save(state, src / "pytorch_model.bin")
    with pytest.raises(ParamsError, match="vocab_size 100 is not GPT-2's 50257"):
        import_hf(src, tmp_path / "out")


def test_incompatible_hf_config_is_refused(hf_tiny: Any, tmp_path: Path) -> None:
    src = tmp_path / "relu"
    shutil.copytree(hf_tiny.path, src)
    config = json.loads((src / "config.json").read_text())
    config["activation_function"] = "relu"
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ParamsError, match="activation_function='relu'"):
        import_hf(src, tmp_path / "out")


# --- CSV bundles ------------------------------------------------------------------------------


def _variant_name(name: str, i: int) -> str:
    """Spellings seen in the wild: prefixes, and _ or - for the dots."""
    style = i % 4
    if style == 0:
        return f"transformer.{name}"
    if style == 1:
        return "model_" + name.replace(".", "_")
    if style == 2:
        return name.replace(".", "-")
    return name


def test_import_bundle_zip_with_prefixed_names(params_tiny: Params, tmp_path: Path) -> None:
    """A zip without config.json, odd names, a 1-D tensor as a column, no final newline."""
    staging = tmp_path / "staging"
    staging.mkdir()
    files = {}
    for i, (name, array) in enumerate(params_tiny.tensors.items()):
        files[name] = staging / f"{_variant_name(name, i)}.csv"
        write_csv(files[name], array)
    write_csv(files["ln_f.bias"], params_tiny["ln_f.bias"].reshape(-1, 1))
    last = files["h.0.ln_1.weight"]
    last.write_bytes(last.read_bytes().rstrip(b"\n"))
    assert {p.name for p in staging.iterdir()} >= {
        "transformer.wte.weight.csv", "model_wpe_weight.csv", "h-0-ln_1-weight.csv"
    }  # fmt: skip
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(staging.iterdir()):
            zf.write(path, f"gpt2-bundle/{path.name}")
    out = import_bundle(archive, tmp_path / "out", n_head=4)
    loaded = load_params(out)
    assert loaded.config == params_tiny.config
    _assert_same(loaded, {k: np.asarray(v) for k, v in params_tiny.tensors.items()})
    ids = [1, 2, 3, 50256]
    assert np.array_equal(reference_forward(loaded, ids), reference_forward(params_tiny, ids))


def test_import_bundle_needs_n_head_when_it_cannot_guess(
    params_tiny_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "noconf"
    shutil.copytree(params_tiny_dir, src, ignore=shutil.ignore_patterns(".cache", "config.json"))
    with pytest.raises(ParamsError, match="n_head cannot be inferred for n_embd=64"):
        import_bundle(src, tmp_path / "out")


def test_import_bundle_reports_missing_and_transposed(
    params_tiny_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "broken"
    shutil.copytree(params_tiny_dir, src, ignore=shutil.ignore_patterns(".cache"))
    (src / "h.1.mlp.c_fc.bias.csv").unlink()
    with pytest.raises(ParamsError, match=r"missing h\.1\.mlp\.c_fc\.bias\.csv"):
        import_bundle(src, tmp_path / "out")
    shutil.copy(params_tiny_dir / "h.1.mlp.c_fc.bias.csv", src)
    weight = np.loadtxt(src / "h.0.mlp.c_fc.weight.csv", delimiter=",", dtype=np.float32)
    write_csv(src / "h.0.mlp.c_fc.weight.csv", weight.T)
    with pytest.raises(ParamsError, match="looks transposed"):
        import_bundle(src, tmp_path / "out")


# --- hub and CLI --------------------------------------------------------------------------------


def test_download_offline_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty hub cache
    with pytest.raises(ParamsError) as info:
        download("gpt2", tmp_path / "out")
    message = str(info.value)
    assert "could not download 'gpt2'" in message
    assert "cellgpt weights import-hf ./gpt2 --name gpt2`" in message


def test_cli_import_info_check(
    hf_tiny: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w"
    assert main(["weights", "import-hf", str(hf_tiny.path), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["weights", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "n_layer             2" in info
    assert f"parameters          {sum(p.numel() for p in hf_tiny.model.parameters()):,}" in info
    assert "28 of 28 tensors cached and up to date" in info
    assert main(["weights", "check", str(out)]) == 0
    assert "ok: 28 tensors" in capsys.readouterr().out


def test_cli_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cellgpt: error: ") and "no config.json" in err
    assert "Traceback" not in err
    assert main(["weights", "import-hf", str(tmp_path / "nope" / "x"), "--out", "o"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_cli_download_offline_subprocess(tmp_path: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cellgpt",
            "weights",
            "download",
            "gpt2",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2
    assert "cellgpt: error: could not download 'gpt2'" in result.stderr
    assert "Traceback" not in result.stderr
