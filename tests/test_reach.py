"""A workbook file is a stranger's data: its formulas name models only by name, never by path.
A folder becomes reachable only when the user passes it (CLI `--model`, `cellgpt.open(model=)`),
and then exactly that folder.

Each value of `adversarial/reach_paths.tsv` is written as a workbook's own `model` input and must
be refused by the `weights` and `tokenizer` cells with a message naming the cell. Nothing is
written outside the expected folders. `pytest tests/test_reach.py -s` prints counts per class.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

import cellgpt
from cellgpt import locations
from cellgpt.engine import CellError
from cellgpt.gpt2.functions import load_tokenizer, load_weights

REPO = Path(__file__).resolve().parent.parent
MINI = REPO / "weights_csv" / "gpt2-mini"
CORPUS = REPO / "tests" / "adversarial" / "reach_paths.tsv"
WORKBOOK = (REPO / "workbooks" / "gpt2.py").read_text(encoding="utf-8")


def _cases() -> list[tuple[str, str, str]]:
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            category, message, value = line.split("\t")
            rows.append((category, message, value))
    return rows


CASES = _cases()


def _value(literal: str, outside: Path, home: Path) -> object:
    text = literal.replace("{OUTSIDE}", str(outside)).replace("{HOME}", str(home))
    if " * " in text or " + " in text:  # 'a' * 5000, '/' + 'a/' * 3000
        return eval(text, {"__builtins__": {}})  # the corpus is ours, not a stranger's
    return ast.literal_eval(text)


def _tree(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """path → (size, mtime_ns) of everything under root (links not followed)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder) / d != skip]  # the expected writes
        for name in dirs + files:
            st = os.lstat(Path(folder) / name)
            found[str(Path(folder) / name)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A fresh CELLGPT_HOME, a valid model folder nobody granted, and a clean grant list."""
    home = tmp_path / "home"
    monkeypatch.setenv("CELLGPT_HOME", str(home))
    outside = tmp_path / "outside" / "stolen"
    shutil.copytree(MINI, outside)
    locations.revoke_all_grants()
    yield {"home": home, "outside": outside, "root": tmp_path}
    locations.revoke_all_grants()


def _workbook_with_model(folder: Path, value: object) -> Path:
    """The GPT-2 workbook whose own `model` input holds `value` (a stranger's file)."""
    text = WORKBOOK.replace('model = "gpt2-mini"', f"model = {value!r}", 1)
    assert text != WORKBOOK
    path = folder / "evil.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_hostile_model_value_is_refused(world: dict[str, Path]) -> None:
    counts: Counter[str] = Counter()
    before = _tree(world["root"], skip=world["home"])
    for category, message, literal in CASES:
        value = _value(literal, world["outside"], world["home"])
        for fn in (load_weights, load_tokenizer):
            with pytest.raises(Exception) as caught:
                fn(value)
            assert type(caught.value).__name__ == "CellEvalError", (literal, caught.value)
            assert re.search(message, str(caught.value), re.IGNORECASE), (literal, caught.value)
        counts[category] += 1
    assert _tree(world["root"], skip=world["home"]) == before
    print(f"\nhostile model values per class: {dict(counts)}")
    assert set(counts) >= {"absolute", "relative", "tilde", "url", "windows", "control", "long"}


@pytest.mark.parametrize(
    "literal", [c[2] for c in CASES if c[0] in ("absolute", "relative", "tilde", "control")]
)
def test_a_workbook_literal_path_never_resolves(world: dict[str, Path], literal: str) -> None:
    value = _value(literal, world["outside"], world["home"])
    path = _workbook_with_model(world["root"], value)
    wb = cellgpt.open(path, prompt="hi")  # the workbook's own model input, not the user's
    for cell in ("weights", "tokenizer"):
        with pytest.raises(CellError) as caught:
            wb[cell]
        assert f"cell {cell!r}" in str(caught.value)
        assert "name" in str(caught.value)


def test_the_folder_the_user_passes_is_granted(world: dict[str, Path]) -> None:
    path = _workbook_with_model(world["root"], str(world["outside"]))
    with pytest.raises(CellError, match="only by name"):
        cellgpt.open(path, prompt="hi")["weights"]
    wb = cellgpt.open(path, model=str(world["outside"]), prompt="hi")  # the user's choice
    assert wb["config"]["n_embd"] == 64
    # From now on (this process) the stranger's literal may name exactly that folder...
    assert cellgpt.open(path, prompt="hi")["config"]["n_embd"] == 64
    # ...by any spelling of it, and nothing else.
    assert locations.reachable_model(f"{world['outside']}/../stolen/") == world["outside"]
    for other in (world["outside"].parent, world["outside"] / "sub", world["root"]):
        with pytest.raises(locations.UnreachableError):
            locations.reachable_model(str(other))


def test_a_grant_is_that_folder_not_one_below_or_beside(world: dict[str, Path]) -> None:
    inner = world["outside"] / "inner"
    shutil.copytree(MINI, inner)
    locations.grant_folder(world["outside"])
    for value in (str(inner), f"{world['outside']}/inner/..", str(world["outside"].parent)):
        if Path(value).resolve() == world["outside"]:
            continue
        with pytest.raises(locations.UnreachableError):
            locations.reachable_model(value)


def test_a_link_to_a_granted_folder_is_refused_unless_it_resolves_there(
    world: dict[str, Path],
) -> None:
    link = world["root"] / "link"
    link.symlink_to(world["outside"])
    locations.grant_folder(world["outside"])
    # The link resolves to the granted folder: the same folder, so the same grant.
    assert locations.reachable_model(str(link)) == world["outside"]
    locations.revoke_all_grants()
    locations.grant_folder(link)  # granting the link grants where it points today
    other = world["root"] / "other"
    shutil.copytree(MINI, other)
    link.unlink()
    link.symlink_to(other)  # repointed later: the grant does not follow
    with pytest.raises(locations.UnreachableError):
        locations.reachable_model(str(link))


def test_names_still_resolve_on_the_search_path(world: dict[str, Path]) -> None:
    assert locations.reachable_model("gpt2-mini") == MINI.resolve()
    assert locations.reachable_tokenizer("gpt2") == locations.gpt2_tokenizer_dir().resolve()
    mine = world["home"] / "models" / "mine"
    shutil.copytree(MINI, mine)
    assert locations.reachable_model("mine") == mine.resolve()


def test_a_link_in_the_users_own_folder_is_followed(world: dict[str, Path]) -> None:
    """Decision: only the user (or cellgpt at the user's request) puts entries into the user
    folder, so a link there is the user's own choice and is followed."""
    models = world["home"] / "models"
    models.mkdir(parents=True)
    (models / "linked").symlink_to(world["outside"])
    assert locations.reachable_model("linked") == world["outside"]


def test_a_name_that_is_also_a_folder_in_the_cwd_is_never_used_by_a_workbook(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(world["outside"].parent)  # ./stolen is a model folder here
    with pytest.raises(locations.ModelNotFoundError):
        locations.reachable_model("stolen")
    # The user typing the same bare name means that folder (as `resolve_model` always did).
    granted = locations.grant_user_model("stolen")
    assert granted == str(world["outside"])
    assert locations.reachable_model(granted) == world["outside"]


def test_the_cli_grants_the_model_folder_it_is_given(
    world: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from cellgpt.cli import main

    assert main(["run", "hi", "--model", str(world["outside"])]) == 0
    assert locations.is_granted(world["outside"])
    assert not locations.is_granted(world["outside"].parent)
    capsys.readouterr()


def test_a_wrong_path_from_the_user_says_so(world: dict[str, Path]) -> None:
    wb = cellgpt.open("gpt2", model=str(world["root"] / "nowhere"), prompt="hi")
    with pytest.raises(CellError, match="no such model folder"):
        wb["weights"]
