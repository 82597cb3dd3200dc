"""Finding a model's weights folder from a name or path, and loading it once per process."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cellgpt.gpt2.params import Params
    from cellgpt.gpt2.tokenizer import Tokenizer

DEFAULT_MODEL = "gpt2-mini"
REPO_ROOT = Path(__file__).resolve().parents[2]


class ModelNotFoundError(LookupError):
    pass


def search_path() -> list[Path]:
    """Folders searched for a model name: $CELLGPT_WEIGHTS, ./weights_csv, the repo's."""
    folders = [Path(p) for p in os.environ.get("CELLGPT_WEIGHTS", "").split(os.pathsep) if p]
    folders += [Path.cwd() / "weights_csv", REPO_ROOT / "weights_csv"]
    return list(dict.fromkeys(folders))


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A folder path, or a name looked up in `search_path()`."""
    text = os.fspath(model)
    direct = Path(text).expanduser()
    if direct.is_dir() and (direct / "config.json").exists():
        return direct.resolve()
    if os.sep not in text and "/" not in text:
        for folder in search_path():
            candidate = folder / text
            if (candidate / "config.json").exists():
                return candidate.resolve()
    looked = ", ".join(str(f) for f in search_path())
    raise ModelNotFoundError(
        f"no model {text!r}: give a folder with config.json and CSV tables, or a name found in "
        f"{looked}. Import real GPT-2 with `cellgpt weights import-hf DIR --out weights_csv/gpt2` "
        f"or `cellgpt weights download gpt2` (needs internet)."
    )


_lock = threading.Lock()
_params: dict[Path, tuple[float, Params]] = {}
_tokenizers: dict[Path, tuple[float, Tokenizer]] = {}


def _stamp(folder: Path) -> float:
    """Changes when any file in the folder changes (so edited CSVs are picked up)."""
    return max((p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()), default=0)


def load_model_params(model: str | os.PathLike[str]) -> Params:
    from cellgpt.gpt2.params import load_params

    folder = resolve_model(model)
    stamp = _stamp(folder)
    with _lock:
        cached = _params.get(folder)
        if cached is None or cached[0] != stamp:
            _params[folder] = (stamp, load_params(folder))
        return _params[folder][1]


def load_model_tokenizer(model: str | os.PathLike[str]) -> Tokenizer:
    from cellgpt.gpt2.tokenizer import Tokenizer

    folder = resolve_model(model)
    stamp = _stamp(folder)
    with _lock:
        cached = _tokenizers.get(folder)
        if cached is None or cached[0] != stamp:
            _tokenizers[folder] = (stamp, Tokenizer.from_dir(folder))
        return _tokenizers[folder][1]
