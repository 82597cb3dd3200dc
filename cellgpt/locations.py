"""Where cellgpt finds models, tokenizers and workbooks by name, and where it keeps caches.

One rule everywhere (CLI, Python API, workbooks): an explicit path is used as given; a bare
name is looked up first in the user's folder (`$CELLGPT_HOME`, else the per-user data
directory), then among the files bundled with the package. The bundled files are the repo's
top-level `workbooks/` and `weights_csv/`; a wheel carries them as `cellgpt/_bundled/...`,
and a source checkout (editable install) reads them where they are.

This module imports nothing else of cellgpt, so every layer may use it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import platformdirs

HOME_ENV = "CELLGPT_HOME"
DEFAULT_MODEL = "gpt2-mini"
DEFAULT_WORKBOOK = "gpt2"
WORKBOOK_SUFFIX = ".py"
_PACKAGE = Path(__file__).resolve().parent


class NotFoundError(LookupError):
    """A model, tokenizer or workbook name that resolves to nothing."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ModelNotFoundError(NotFoundError):
    pass


class WorkbookNotFoundError(NotFoundError):
    pass


class TokenizerNotFoundError(NotFoundError):
    pass


# --- folders -----------------------------------------------------------------------------


def user_dir() -> Path:
    """The user's own cellgpt folder: `$CELLGPT_HOME`, else the platform's user data dir."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser() if home else Path(platformdirs.user_data_dir("cellgpt"))


def user_models_dir() -> Path:
    """Where `cellgpt weights download/import-*` put models by default."""
    return user_dir() / "models"


def user_workbooks_dir() -> Path:
    return user_dir() / "workbooks"


def cache_dir() -> Path:
    """Binary caches: `$CELLGPT_HOME/cache`, else the platform's user cache dir. Never a
    folder inside the package or beside a model (those may be read-only or shared)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "cache"
    return Path(platformdirs.user_cache_dir("cellgpt"))


def bundled_dir(kind: str) -> Path:
    """`workbooks` or `weights_csv` as shipped: inside the wheel, else the source checkout."""
    packaged = _PACKAGE / "_bundled" / kind
    return packaged if packaged.is_dir() else _PACKAGE.parent / kind


def gpt2_tokenizer_dir() -> Path:
    """The GPT-2 tokenizer files (encoder.json, vocab.bpe) shipped inside the package."""
    return _PACKAGE / "tokenizer" / "data" / "gpt2"


# --- names -------------------------------------------------------------------------------


def looks_like_path(text: str) -> bool:
    """A path names a location (a separator, a leading ~ or .); a name does not."""
    return (
        "/" in text
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.startswith(("~", "."))
    )


def _entries(folders: list[Path], is_entry: object) -> dict[str, Path]:
    """name → path over the folders, earlier folders winning."""
    found: dict[str, Path] = {}
    for folder in folders:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            continue
        for child in children:
            name = is_entry(child)  # type: ignore[operator]
            if name and name not in found:
                found[name] = child
    return found


def model_folders() -> list[Path]:
    """The folders searched for a model name, in order."""
    return [user_models_dir(), bundled_dir("weights_csv")]


def _model_name(path: Path) -> str | None:
    return path.name if (path / "config.json").is_file() else None


def available_models() -> dict[str, Path]:
    """Every model a name can reach: name → folder (the user's first, then bundled)."""
    return _entries(model_folders(), _model_name)


def workbook_folders() -> list[Path]:
    return [user_workbooks_dir(), bundled_dir("workbooks")]


def _workbook_name(path: Path) -> str | None:
    ok = path.suffix == WORKBOOK_SUFFIX and path.is_file() and not path.name.startswith("_")
    return path.stem if ok else None


def available_workbooks() -> dict[str, Path]:
    return _entries(workbook_folders(), _workbook_name)


def _tokenizer_name(path: Path) -> str | None:
    return path.name if (path / "encoder.json").is_file() else None


def available_tokenizers() -> dict[str, Path]:
    """Tokenizers by name: every model folder that has one, then the built-in `gpt2`."""
    found = _entries(model_folders(), _tokenizer_name)
    found.setdefault("gpt2", gpt2_tokenizer_dir())
    return found


def unknown_name_message(kind: str, name: str, known: dict[str, Path], where: list[Path]) -> str:
    """'no model 'gpt2-mimi'; did you mean 'gpt2-mini'? Known: ...; looked in ...'."""
    message = f"no {kind} {name!r}"
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    if close:
        message += f"; did you mean {close[0]!r}?"
    message += f" Known {kind}s: {', '.join(sorted(known)) or 'none'}"
    message += f" (looked in {', '.join(str(f) for f in where)})."
    return message


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A folder with config.json: an explicit path, or a name on the model search path."""
    text = os.fspath(model)
    direct = Path(text).expanduser()
    if text and (direct / "config.json").is_file():
        return direct.resolve()
    if looks_like_path(text) or not text:
        what = (
            "not a model folder (no config.json in it)"
            if direct.is_dir()
            else "no such model folder"
        )
        raise ModelNotFoundError(f"{text or '(empty)'}: {what}")
    known = available_models()
    if text in known:
        return known[text].resolve()
    message = unknown_name_message("model", text, known, model_folders())
    message += (
        " Get real GPT-2 with `cellgpt weights import-hf DIR --name gpt2` or "
        "`cellgpt weights download gpt2` (needs internet)."
    )
    raise ModelNotFoundError(message)


def resolve_workbook(workbook: str | os.PathLike[str]) -> Path:
    """A workbook file: an explicit path, or a name (`gpt2`) on the workbook search path."""
    text = os.fspath(workbook)
    direct = Path(text).expanduser()
    if text and direct.is_file():
        return direct.resolve()
    if looks_like_path(text) or text.endswith(WORKBOOK_SUFFIX) or not text:
        raise WorkbookNotFoundError(f"{text or '(empty)'}: no such workbook file")
    known = available_workbooks()
    if text in known:
        return known[text].resolve()
    raise WorkbookNotFoundError(unknown_name_message("workbook", text, known, workbook_folders()))


def resolve_tokenizer(tokenizer: str | os.PathLike[str]) -> Path:
    """A folder with encoder.json and vocab.bpe: an explicit path, a model's name, or `gpt2`."""
    text = os.fspath(tokenizer)
    direct = Path(text).expanduser()
    if text and (direct / "encoder.json").is_file():
        return direct.resolve()
    if looks_like_path(text) or not text:
        what = (
            "not a tokenizer folder (no encoder.json)"
            if direct.is_dir()
            else "no tokenizer folder there"
        )
        raise TokenizerNotFoundError(f"{text or '(empty)'}: {what}")
    known = available_tokenizers()
    if text in known:
        return known[text].resolve()
    raise TokenizerNotFoundError(unknown_name_message("tokenizer", text, known, model_folders()))
