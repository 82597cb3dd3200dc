"""Prompt files for `cellgpt batch`: text, JSONL, CSV and Parquet, with per-row inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cellgpt.batchrun.inputs import InputError, read_prompts
from cellgpt.cli import main

INPUTS = {"temperature", "seed"}


def test_text_lines_keep_their_line_numbers_and_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("ROMEO:\n\nJULIET: hi\n")
    prompts = read_prompts(path)
    assert (prompts.ids, prompts.texts, prompts.rows) == (
        [0, 2],
        ["ROMEO:", "JULIET: hi"],
        [{}, {}],
    )


def test_tables_give_a_prompt_column_and_per_row_inputs(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["a b", "c"], "temperature": [0.5, 2.0], "note": ["x", "y"]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    (tmp_path / "p.jsonl").write_text(
        "\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n"
    )
    for name in ("p.csv", "p.parquet", "p.jsonl"):
        prompts = read_prompts(tmp_path / name, column="text", inputs=INPUTS)
        assert prompts.texts == ["a b", "c"]
        assert prompts.rows == [{"temperature": 0.5}, {"temperature": 2.0}]  # note: not an input
        assert all(type(r["temperature"]) is float for r in prompts.rows)


def test_bad_files_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(InputError, match=r"p\.jsonl:2: not JSON"):
        read_prompts(path)
    frame = tmp_path / "p.csv"
    frame.write_text("text\nhello\n")
    with pytest.raises(InputError, match="no column 'prompt'"):
        read_prompts(frame)


def test_cli_reports_a_missing_column_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = tmp_path / "p.csv"
    frame.write_text("text\nhello\n")
    code = main(["batch", str(frame), "--cells", "logits", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "no column 'prompt'" in err and "Traceback" not in err
