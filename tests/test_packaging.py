"""What a user gets from the package: names resolve one way everywhere (an explicit path, then
the user's folder, then the bundled files), caches go to the user's cache dir, and the wheel
lists every package. The wheel itself is built and run from an empty folder by .ci/run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cellgpt
from cellgpt import locations
from cellgpt.locations import (
    ModelNotFoundError,
    TokenizerNotFoundError,
    WorkbookNotFoundError,
    resolve_model,
    resolve_tokenizer,
    resolve_workbook,
)
from cellgpt.weights.cache import ParamCache
from cellgpt.weights.params import load_params

REPO = Path(__file__).resolve().parent.parent
MINI = REPO / "weights_csv" / "gpt2-mini"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty CELLGPT_HOME for one test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("CELLGPT_HOME", str(folder))
    return folder


def _cli(*args: str, cwd: Path, env_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELLGPT_HOME": str(env_home), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cellgpt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- packaging metadata ------------------------------------------------------------------


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "cellgpt").rglob("__init__.py")
    }
    assert on_disk <= listed, f"packages missing from pyproject.toml: {on_disk - listed}"
    mapped = config["package-dir"]
    assert mapped == {
        "cellgpt._bundled.workbooks": "workbooks",
        "cellgpt._bundled.weights_csv": "weights_csv",
    }
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert all((REPO / f).is_file() for f in project["license-files"])


def test_bundled_folders_in_a_checkout_are_the_repo_sources() -> None:
    assert locations.bundled_dir("workbooks") == REPO / "workbooks"
    assert locations.bundled_dir("weights_csv") == REPO / "weights_csv"
    assert (locations.gpt2_tokenizer_dir() / "encoder.json").is_file()


# --- names -------------------------------------------------------------------------------


def test_bundled_names_resolve_from_any_folder(home: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    assert resolve_model("gpt2-mini") == MINI.resolve()
    assert resolve_workbook("gpt2") == (REPO / "workbooks" / "gpt2.py").resolve()
    assert resolve_workbook("word_analogy").name == "word_analogy.py"
    assert resolve_tokenizer("gpt2") == locations.gpt2_tokenizer_dir().resolve()
    assert resolve_tokenizer("gpt2-mini") == MINI.resolve()


def test_the_users_folder_comes_before_the_bundled_one(home: Path) -> None:
    mine = home / "models" / "gpt2-mini"
    shutil.copytree(MINI, mine)
    assert resolve_model("gpt2-mini") == mine.resolve()
    (home / "workbooks").mkdir()
    (home / "workbooks" / "gpt2.py").write_text('prompt = "hello"\n')
    assert resolve_workbook("gpt2") == (home / "workbooks" / "gpt2.py").resolve()
    assert set(locations.available_models()) == {"gpt2-mini"}


def test_explicit_paths_are_taken_as_given(home: Path, tmp_path: Path) -> None:
    assert resolve_model(str(MINI)) == MINI.resolve()
    assert resolve_workbook(str(REPO / "workbooks" / "tokenizer.py")).name == "tokenizer.py"
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        resolve_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve_model(str(tmp_path))
    # A path never falls back to a name: ./gpt2-mini is not the bundled model.
    with pytest.raises(ModelNotFoundError):
        resolve_model("./gpt2-mini")
    with pytest.raises(WorkbookNotFoundError, match="no such workbook file"):
        resolve_workbook("missing.py")


def test_unknown_names_list_what_exists_and_the_closest(home: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("gpt2-mimi")
    message = str(err.value)
    assert "did you mean 'gpt2-mini'?" in message
    assert "Known models: gpt2-mini" in message
    assert str(home / "models") in message
    with pytest.raises(WorkbookNotFoundError, match="did you mean 'gpt2'"):
        resolve_workbook("gtp2")
    with pytest.raises(WorkbookNotFoundError, match="word_analogy"):
        resolve_workbook("zzzz")
    with pytest.raises(TokenizerNotFoundError, match="did you mean"):
        resolve_tokenizer("gpt3")


def test_open_by_name_from_another_folder(home: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)
    wb = cellgpt.open("gpt2", prompt="ROMEO:")
    assert "".join(wb["tokens"]) == "ROMEO:"
    assert len(wb["top_k"]) == 10
    assert Path(wb.document.path) == (REPO / "workbooks" / "gpt2.py").resolve()
    assert {p.name for p in tmp_path.iterdir()} <= {"home"}  # nothing written to the cwd


def test_cli_finds_workbooks_and_models_by_name_from_any_folder(home: Path, tmp_path: Path) -> None:
    out = _cli("run", "ROMEO:", "--json", cwd=tmp_path, env_home=home)
    assert out.returncode == 0, out.stderr
    out = _cli(
        "cell", "words", "hello world", "--workbook", "tokenizer", cwd=tmp_path, env_home=home
    )
    assert out.returncode == 0, out.stderr
    out = _cli("run", "hi", "--model", "gpt2-mimi", cwd=tmp_path, env_home=home)
    assert out.returncode == 2
    assert "did you mean 'gpt2-mini'?" in out.stderr and "Traceback" not in out.stderr
    out = _cli("weights", "info", "gpt2-mini", cwd=tmp_path, env_home=home)
    assert out.returncode == 0, out.stderr
    assert str(MINI) in out.stdout
    out = _cli("weights", "list", cwd=tmp_path, env_home=home)
    assert out.returncode == 0 and "gpt2-mini" in out.stdout


# --- caches ------------------------------------------------------------------------------


def test_weights_cache_lives_in_the_user_cache_dir(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(MINI, folder)
    before = sorted(p.name for p in folder.iterdir())
    first = load_params(folder)
    assert first.cache_hits == 0
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written beside the CSVs
    cache = ParamCache(folder, create=False)
    assert cache.dir.is_relative_to(home / "cache")
    assert len(list(cache.dir.glob("*.npy"))) == len(first.tensors)
    assert load_params(folder).cache_hits == len(first.tensors)


def test_a_read_only_model_folder_still_gets_a_cache(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    shutil.copytree(MINI, folder)
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        load_params(folder)
        assert load_params(folder).cache_hits > 0
    finally:
        for path in [folder, *folder.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_each_folder_has_its_own_cache(home: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(MINI, one)
    shutil.copytree(MINI, two)
    assert ParamCache(one, create=False).dir == ParamCache(one, create=False).dir
    assert ParamCache(one, create=False).dir != ParamCache(two, create=False).dir
    load_params(one)
    assert load_params(two).cache_hits == 0  # a copy is parsed and checked on its own


def test_imports_go_to_the_users_model_folder_by_default(home: Path, tmp_path: Path) -> None:
    out = _cli(
        "weights", "import-bundle", str(MINI), "--name", "mini-copy", cwd=tmp_path, env_home=home
    )
    assert out.returncode == 0, out.stderr
    target = home / "models" / "mini-copy"
    assert (target / "config.json").is_file()
    assert resolve_model("mini-copy") == target.resolve()


# --- saving ------------------------------------------------------------------------------


def test_a_bundled_workbook_opened_by_name_saves_into_the_users_folder(home: Path) -> None:
    bundled = REPO / "workbooks" / "word_analogy.py"
    original = bundled.read_bytes()
    wb = cellgpt.open("word_analogy")
    wb.set_formula("ranking", "nearest(analogy, embeddings, words, 3)")
    wb.save()
    assert bundled.read_bytes() == original  # the shipped file is untouched
    mine = home / "workbooks" / "word_analogy.py"
    assert "nearest(analogy, embeddings, words, 3)" in mine.read_text()
    assert resolve_workbook("word_analogy") == mine.resolve()  # the name now finds the copy
    again = cellgpt.open("word_analogy")
    assert len(again["ranking"]) == 3
    again.save()  # a workbook from the user's folder saves in place
    assert Path(again.document.path) == mine.resolve()


def test_a_workbook_opened_by_path_saves_to_that_path(home: Path, tmp_path: Path) -> None:
    mine = tmp_path / "analogy.py"
    shutil.copy(REPO / "workbooks" / "word_analogy.py", mine)
    wb = cellgpt.open(mine)
    wb.save()
    assert Path(wb.document.path) == mine and not (home / "workbooks").exists()
