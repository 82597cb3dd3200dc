"""Where cellgpt finds models, tokenizers and workbooks by name, and where it keeps caches.

One rule everywhere (CLI, Python API, workbooks): an explicit path is used as given; a bare
name is looked up first in the user's folder (`$CELLGPT_HOME`, else the per-user data
directory), then among the files bundled with the package. The bundled files are the repo's
top-level `workbooks/` and `weights_csv/`; a wheel carries them as `cellgpt/_bundled/...`,
and a source checkout (editable install) reads them where they are.

What a workbook may name is narrower (see `reachable_model`): a workbook file is data from a
stranger, so its formulas name models and tokenizers only by *name*. A path is a privilege of
the user: the CLI and `cellgpt.open` grant each folder the user passes (`grant_user_model`),
and a workbook may then refer to exactly that folder, by any spelling that resolves to it.

This module imports nothing else of cellgpt, so every layer may use it.
"""

from __future__ import annotations

import difflib
import os
import threading
import unicodedata
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


class UnreachableError(NotFoundError):
    """A workbook named a location it may not reach: a path the user did not grant, or a
    string that is not a plain name."""


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


RANKS_SUFFIX = ".ranks.xz"
# Tokenizer files a user may name by path: a rank table of ours, minbpe's model file, a
# Hugging Face tokenizer.json.
TOKENIZER_FILE_SUFFIXES = (RANKS_SUFFIX, ".model", ".json")
HF_TOKENIZER_FILE = "tokenizer.json"


def rank_tables_dir() -> Path:
    """The bundled rank tables (r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base)."""
    return _PACKAGE / "tokenizer" / "data" / "ranks"


def bundled_rank_tables() -> dict[str, Path]:
    """Rank table name → file, for the tables shipped inside the package."""
    folder = rank_tables_dir()
    return {p.name.removesuffix(RANKS_SUFFIX): p for p in sorted(folder.glob("*" + RANKS_SUFFIX))}


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


def _has(folder: Path, file: str) -> bool:
    """Whether `folder` has an entry `file`. Any entry: reading it later says precisely what
    is wrong with it (a pipe, a device), where "not a model folder" would mislead."""
    return os.path.lexists(folder / file)


def _model_name(path: Path) -> str | None:
    return path.name if _has(path, "config.json") else None


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
    return path.name if _has(path, "encoder.json") else None


def available_tokenizers() -> dict[str, Path]:
    """Tokenizers by name: every model folder that has one, then the built-in `gpt2`."""
    found = _entries(model_folders(), _tokenizer_name)
    found.setdefault("gpt2", gpt2_tokenizer_dir())
    for name, path in bundled_rank_tables().items():
        found.setdefault(name, path)
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
    if text and _has(direct, "config.json"):
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
        " Get real GPT-2 with `pip install huggingface_hub && cellgpt weights download gpt2` "
        "(needs internet), or from a Hugging Face folder ./gpt2: "
        "`cellgpt weights import-hf ./gpt2 --name gpt2`."
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
    """A folder with encoder.json and vocab.bpe, or a tokenizer file (a rank table, minbpe's
    .model, a Hugging Face tokenizer.json, or a folder holding one): an explicit path, a
    model's name, `gpt2` or a bundled rank table's name (`cl100k_base`)."""
    text = os.fspath(tokenizer)
    direct = Path(text).expanduser()
    if text and _has(direct, "encoder.json"):
        return direct.resolve()
    if text and direct.is_dir() and _has(direct, HF_TOKENIZER_FILE):
        return (direct / HF_TOKENIZER_FILE).resolve()
    if text and direct.name.endswith(TOKENIZER_FILE_SUFFIXES) and os.path.lexists(direct):
        return direct.resolve()
    if looks_like_path(text) or not text:
        what = (
            "not a tokenizer folder (no encoder.json or tokenizer.json)"
            if direct.is_dir()
            else "no tokenizer folder or file there"
        )
        raise TokenizerNotFoundError(f"{text or '(empty)'}: {what}")
    known = available_tokenizers()
    if text in known:
        return known[text].resolve()
    raise TokenizerNotFoundError(unknown_name_message("tokenizer", text, known, model_folders()))


def link_outside(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """Where `path` leads if it is a link out of `folder` (else None). A model folder from a
    stranger may hold `wte.weight.csv -> ~/.ssh/id_rsa`: read as a table, its first cell
    would be quoted back in an error message. Links that stay inside the folder are fine."""
    if not os.path.islink(path):
        return None
    target = Path(os.path.realpath(path))
    return None if target.is_relative_to(os.path.realpath(folder)) else target


# --- what a workbook may reach -----------------------------------------------------------

MAX_NAME = 128
_granted: set[Path] = set()
_granted_lock = threading.Lock()


def name_problem(text: object) -> str | None:
    """Why `text` is not a plain name (None when it is one). A plain name is at most
    MAX_NAME printable characters without separators, drive or URL colons, and does not
    start with `.` or `~`, so that it can only ever be looked up, never walked."""
    if not isinstance(text, str):
        return f"expected a name (text), got {type(text).__name__}"
    if not text:
        return "the name is empty"
    if len(text) > MAX_NAME:
        return f"the name is {len(text):,} characters long (at most {MAX_NAME})"
    if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in text):
        return "the name holds control or separator characters"
    if looks_like_path(text) or "\\" in text or ":" in text:
        return "that is a path, not a name"
    return None


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(Path(os.fspath(path)).expanduser()))


def grant_folder(path: str | os.PathLike[str]) -> Path:
    """Let workbooks refer to this one folder (the user named it); returns its real path.
    Only that folder: neither its parent nor anything below it."""
    real = _real(path)
    with _granted_lock:
        _granted.add(real)
    return real


def is_granted(path: str | os.PathLike[str]) -> bool:
    with _granted_lock:
        return _real(path) in _granted


def revoke_all_grants() -> None:
    """Forget every grant (tests; a long-running host between users)."""
    with _granted_lock:
        _granted.clear()


def grant_user_model(value: object) -> object:
    """A model the user chose (CLI `--model`, `cellgpt.open(model=...)`), as the value the
    workbook's `model` input should hold. A name stays a name; a folder the user gave as a
    path is granted and becomes its real absolute path (so a later cwd change cannot move
    it). What resolves to nothing is left for the cell to report."""
    return _grant_user(value, resolve_model)


def grant_user_tokenizer(value: object) -> object:
    """`grant_user_model` for a tokenizer folder."""
    return _grant_user(value, resolve_tokenizer)


def _grant_user(value: object, resolve: object) -> object:
    if not isinstance(value, str | os.PathLike):
        return value
    text = os.fspath(value)
    try:
        folder = resolve(text)  # type: ignore[operator]
    except (NotFoundError, OSError, ValueError):
        if name_problem(text) is None or "\0" in text:
            return text
        # The user's own path, even if wrong: granted, so the cell says "no such model
        # folder" rather than that a workbook may not name paths.
        return str(grant_folder(text))
    # resolve_* try the text as a path first: a bare name that is also a folder in the
    # current directory means that folder, which the workbook then needs granted.
    by_name = name_problem(text) is None and not Path(text).exists()
    if by_name and isinstance(value, str):
        return text
    return str(grant_folder(folder))


def _reachable(value: object, kind: str, resolve: object) -> Path:
    """The one rule for what a workbook names: a granted folder, or a plain name looked up
    on the search path (never as a path relative to the current directory)."""
    if isinstance(value, str | os.PathLike) and not isinstance(value, str):
        value = os.fspath(value)
    problem = name_problem(value)
    if problem is None:
        return resolve(value)  # type: ignore[operator, no-any-return]
    if isinstance(value, str) and "\0" not in value and value and len(value) < 4096:
        try:
            if is_granted(value):
                return _real(value)
        except (OSError, ValueError):
            pass
    shown = repr(value)[:80]
    raise UnreachableError(
        f"{kind} {shown}: a workbook may name a {kind} only by name ({problem}); "
        f"a folder must be given by you, e.g. `--{kind} DIR` or `cellgpt.open(..., {kind}=DIR)`"
    )


def _model_by_name(name: str) -> Path:
    known = available_models()
    if name in known:
        return known[name].resolve()
    raise ModelNotFoundError(unknown_name_message("model", name, known, model_folders()))


def _tokenizer_by_name(name: str) -> Path:
    known = available_tokenizers()
    if name in known:
        return known[name].resolve()
    raise TokenizerNotFoundError(unknown_name_message("tokenizer", name, known, model_folders()))


def reachable_model(value: object) -> Path:
    """The model folder a workbook's value names: a name on the model search path, or a
    folder the user granted. Links inside the user's and the bundled folders are followed:
    only the user (or cellgpt at the user's request) puts entries there."""
    return _reachable(value, "model", _model_by_name)


def reachable_tokenizer(value: object) -> Path:
    """`reachable_model` for tokenizers (`gpt2`, or a model's name)."""
    return _reachable(value, "tokenizer", _tokenizer_by_name)
