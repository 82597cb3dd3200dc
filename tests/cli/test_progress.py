"""Long commands report progress also when stderr is not a terminal (a line every few
seconds, never silent at 100%); in a terminal, one bar redrawn in place."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cellgpt.cli import main
from cellgpt.cli.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("cellgpt.cli.progress.time.monotonic", fake)
    return fake


def test_piped_progress_prints_a_line_every_few_seconds(clock: Clock) -> None:
    out = io.StringIO()
    bar = Progress("import", stream=out, tty=False, every=3.0)
    for second in range(10):  # one call per second
        clock.now = float(second)
        bar(second * 100, 1000, f"t{second}")
    clock.now = 10.0
    bar(1000, 1000, "done")
    bar(1000, 1000, "done")  # a repeated final call adds nothing
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split()[-1] for line in lines] == ["t0", "t3", "t6", "t9", "done"]
    assert lines[-1].startswith("import: 100% 0.0/0.0 MB")
    assert "\r" not in out.getvalue()


def test_a_new_phase_is_reported_after_the_first_reached_100(clock: Clock) -> None:
    out = io.StringIO()
    bar = Progress("import", stream=out, tty=False)
    bar(10, 10, "write h.0")
    clock.now = 0.5
    bar(2, 10, "verify wte")  # a new phase: reported at once
    bar(10, 10, "verify ln_f")
    assert [line.split()[-1] for line in out.getvalue().splitlines()] == ["h.0", "wte", "ln_f"]


def test_a_terminal_gets_one_bar_redrawn_in_place(clock: Clock) -> None:
    out = io.StringIO()
    bar = Progress("export", unit="numbers", stream=out, tty=True)
    for i in range(5):
        clock.now = i * 0.5
        bar(i, 4, "x")
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "100% 4 numbers" in text


def test_delay_keeps_quick_work_silent(clock: Clock) -> None:
    out = io.StringIO()
    bar = Progress("loading gpt2", stream=out, tty=False, delay=1.0)
    bar(10, 10, "cache")
    assert out.getvalue() == ""
    clock.now = 2.0
    bar(5, 10, "wte.weight")
    assert out.getvalue().startswith("loading gpt2: 50%")


def test_import_hf_reports_writing_and_verifying_when_piped(
    hf_tiny: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w"
    assert main(["weights", "import-hf", str(hf_tiny.path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    # Then the command that runs it: by folder, since --out put it outside the model folder.
    assert captured.out.splitlines() == [
        f"wrote {out}",
        f'run it: cellgpt run "ROMEO:" --model {out}',
    ]
    err = captured.err
    lines = err.splitlines()
    assert lines and all(line.startswith("import: ") for line in lines), err
    assert any(" verify " in line for line in lines)  # the read-back is not silent
    assert lines[-1].startswith("import: 100%") and " verify " in lines[-1]


def test_export_reports_progress_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.xlsx"
    assert main(["export", str(out), "ROMEO:", "--cells", "logits", "tokens"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("export: 100% ")
    assert "\r" not in err


def test_a_big_models_first_load_reports_progress(
    params_tiny_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    import cellgpt.cli.common as common

    model = tmp_path / "fresh"  # a folder this process has not loaded: the load reads CSVs
    shutil.copytree(params_tiny_dir, model)
    monkeypatch.setattr(common, "SLOW_LOAD_BYTES", 0)  # the tiny model counts as big
    monkeypatch.setattr(common, "SLOW_LOAD_DELAY", 0.0)  # and its load as slow
    assert main(["cell", "n_layer", "--model", str(model), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "2"
    lines = captured.err.splitlines()
    assert lines and lines[-1].startswith(f"loading {model}: 100%"), captured.err


def test_an_import_by_name_says_to_run_it_by_name(
    hf_tiny: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cellgpt.locations import user_models_dir

    monkeypatch.setenv("CELLGPT_HOME", str(tmp_path / "home"))  # the shared one stays as it was

    assert main(["weights", "import-hf", str(hf_tiny.path), "--name", "tiny-by-name"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"wrote {user_models_dir() / 'tiny-by-name'}",
        'run it: cellgpt run "ROMEO:" --model tiny-by-name',
    ]
