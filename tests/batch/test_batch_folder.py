"""`cellgpt batch` writing a folder: file formats, resuming an interrupted run without
recomputing finished shards, a Dask LocalCluster equal to the local run, perplexity
against Hugging Face's own loss."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import cellgpt
from cellgpt.batchrun import as_prompts
from cellgpt.batchrun.run import make_setup, run_to_folder
from cellgpt.cli import main

MODEL = "gpt2-mini"
PROMPTS = [
    "ROMEO: hi",
    "JULIET: oh",
    "To be or not to be",
    "Hello there my friend",
    "",
    "The cat sat",
    "KING: yes",
]
CELLS = ["logits", "h1.resid_post", "top_k", "next_text"]


def read_folder(folder: Path) -> dict[str, Any]:
    """Everything a run wrote, in a comparable form (by prompt id, not by file)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    out: dict[str, Any] = {"errors": manifest["errors"]}
    for entry in manifest["shards"].values():
        for cell, ids in entry["array_prompts"].items():
            n = next(f for f in entry["files"] if f.startswith(f"arrays/{cell}/"))
            for pid, value in zip(ids, np.load(folder / n), strict=True):
                out[(cell, pid)] = value
    for table in ("scalars", "top_k", "tokens"):
        frame = pd.read_parquet(folder / "tables" / table)
        out[table] = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
    out["prompts"] = pd.read_parquet(folder / "tables" / "prompts.parquet")
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], pd.DataFrame):
            pd.testing.assert_frame_equal(a[key], b[key])
        elif isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        else:
            assert a[key] == b[key]


def test_cli_writes_parquet_npy_and_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "prompts.jsonl"
    source.write_text(
        "\n".join(json.dumps({"prompt": p, "temperature": 0.5}) for p in PROMPTS) + "\n"
    )
    out = tmp_path / "out"
    args = ["batch", str(source), "--cells", ",".join([*CELLS, "sample"]), "--out", str(out)]
    assert main([*args, "--model", MODEL, "--scheduler", "inline", "--shard-size", "2"]) == 0
    assert "7 prompts" in capsys.readouterr().out
    got = read_folder(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["cells"] == [*CELLS, "sample"]
    assert manifest["versions"]["cellgpt"] == cellgpt.__version__
    assert manifest["errors"] == {"4": "the prompt is empty (no tokens)"}
    tokens = got["tokens"]
    for pid, text in enumerate(PROMPTS):
        if not text:
            continue
        wb = cellgpt.open("gpt2", model=MODEL, prompt=text, temperature=0.5)
        assert np.allclose(got[("logits", pid)], wb["logits"], atol=1e-5)
        assert np.array_equal(got[("h1.resid_post", pid)], wb["h1.resid_post"])
        assert list(tokens[tokens.prompt_id == pid].token) == wb["tokens"]
        row = got["scalars"][got["scalars"].prompt_id == pid].iloc[0]
        assert (row.next_text, row["sample"]) == (wb["next_text"], wb["sample"])
        top = got["top_k"][got["top_k"].prompt_id == pid]
        assert list(top.token) == [t[1] for t in wb["top_k"]]


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_without_recomputing_finished_shards(tmp_path: Path) -> None:
    setup = make_setup("gpt2", CELLS, {"model": MODEL}, None, None)
    prompts = as_prompts(PROMPTS)
    options = {"shard_size": 2, "scheduler": "inline"}

    def stop_after_first(done: int, total: int, what: str) -> None:
        raise Interrupt  # as if killed right after the first shard was written

    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        run_to_folder(setup, prompts, out, progress=stop_after_first, **options)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"]
    (first,) = [e for e in manifest["shards"].values() if e["complete"]]
    stamps = {f: (out / f).stat().st_mtime_ns for f in first["files"]}

    seen: list[str] = []
    final = run_to_folder(setup, prompts, out, progress=lambda d, t, w: seen.append(w), **options)
    assert final["complete"] and final["skipped_shards"] == 1
    assert len(seen) == final["n_shards"] - 1  # only the other shards were computed
    assert {f: (out / f).stat().st_mtime_ns for f in first["files"]} == stamps

    fresh = tmp_path / "fresh"
    run_to_folder(setup, prompts, fresh, **options)
    assert_same(read_folder(out), read_folder(fresh))


def test_a_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    setup = make_setup("gpt2", ["logits"], {"model": MODEL}, None, None)
    run_to_folder(setup, as_prompts(["ROMEO:"]), tmp_path, scheduler="inline")
    with pytest.raises(ValueError, match="different batch run"):
        run_to_folder(setup, as_prompts(["JULIET:"]), tmp_path, scheduler="inline")


def test_local_processes_and_a_dask_local_cluster_equal_the_inline_run(tmp_path: Path) -> None:
    from distributed import LocalCluster

    setup = make_setup("gpt2", CELLS, {"model": MODEL}, None, None)
    prompts = as_prompts(PROMPTS)
    run_to_folder(setup, prompts, tmp_path / "inline", shard_size=2, scheduler="inline")
    run_to_folder(
        setup, prompts, tmp_path / "procs", shard_size=2, scheduler="processes", workers=2
    )
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        run_to_folder(
            setup,
            prompts,
            tmp_path / "dask",
            shard_size=2,
            scheduler="dask",
            address=cluster.scheduler_address,
        )
    inline = read_folder(tmp_path / "inline")
    assert_same(read_folder(tmp_path / "procs"), inline)
    assert_same(read_folder(tmp_path / "dask"), inline)


def test_perplexity_equals_hugging_faces_loss(hf_tiny: Any, params_tiny_dir: Path) -> None:
    import torch

    texts = ["ROMEO: what light through yonder window", "To be, or not", "x"]
    df = cellgpt.batch(
        "gpt2", texts, cells=[], model=str(params_tiny_dir), reduce="perplexity", scheduler="inline"
    )
    for i, text in enumerate(texts):
        ids = df["tokens"][i]
        wb = cellgpt.open("gpt2", model=str(params_tiny_dir), prompt=text)
        assert len(ids) == len(wb["token_ids"])
        if len(ids) < 2:
            assert np.isnan(df["loss"][i])  # nothing to predict
            continue
        with torch.no_grad():
            x = torch.tensor([wb["token_ids"]])
            loss = float(hf_tiny.model(x, labels=x).loss)
        assert abs(df["loss"][i] - loss) < 1e-5
        assert abs(df["perplexity"][i] - np.exp(loss)) < 1e-4 * np.exp(loss)


def test_a_killed_process_resumes_where_it_stopped(tmp_path: Path) -> None:
    # A real kill (SIGKILL) of `cellgpt batch` once its first shard is recorded complete.
    source = tmp_path / "many.txt"
    source.write_text("\n".join(f"ROMEO: line {i} of the play" for i in range(40)))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "cellgpt", "batch", str(source), "--out", str(out)]
    argv += ["--cells", "logits_all,h0.attn.pattern", "--shard-size", "1", "--scheduler", "inline"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["shards"]:
            break  # the first shard is written and recorded
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    state = json.loads(manifest.read_text())
    assert not state["complete"] and 0 < len(state["shards"]) < state["n_shards"]
    kept = {k: e for k, e in state["shards"].items() if e["complete"]}
    stamps = {f: (out / f).stat().st_mtime_ns for e in kept.values() for f in e["files"]}
    rerun = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert f"({len(kept)} already done)" in rerun.stdout
    assert {f: (out / f).stat().st_mtime_ns for f in stamps} == stamps
    fresh = tmp_path / "fresh"
    argv[argv.index(str(out))] = str(fresh)
    subprocess.run(argv, capture_output=True, text=True, check=True)
    a, b = json.loads(manifest.read_text()), json.loads((fresh / "manifest.json").read_text())
    assert a["complete"] and b["complete"]
    for index, entry in b["shards"].items():
        for rel in entry["files"]:
            if rel.endswith(".npy"):
                assert np.array_equal(np.load(out / rel), np.load(fresh / rel)), rel
            else:
                pd.testing.assert_frame_equal(
                    pd.read_parquet(out / rel), pd.read_parquet(fresh / rel)
                )
        assert a["shards"][index]["prompts"] == entry["prompts"]
