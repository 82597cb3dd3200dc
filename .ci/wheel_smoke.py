"""Smoke test of an installed wheel, run from an empty folder with the wheel's own venv.

Checks what a user gets from `pip install cellgpt` away from the source checkout: the
bundled GPT-2 workbook opens by name, the bundled model runs, the TUI draws its first screen,
and nothing is written into site-packages.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import cellgpt
from cellgpt.locations import bundled_dir, cache_dir

here = Path.cwd()
package = Path(cellgpt.__file__).resolve().parent
assert "site-packages" in str(package), f"not the installed wheel: {package}"
assert not str(here).startswith(str(package.parent)), "run this from outside site-packages"


def package_files() -> dict[Path, int]:
    return {
        p: p.stat().st_mtime_ns
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


before = package_files()
for kind in ("workbooks", "weights_csv"):
    folder = bundled_dir(kind)
    assert folder.is_relative_to(package), f"{kind} not inside the package: {folder}"

# The Python API by name.
wb = cellgpt.open("gpt2", prompt="ROMEO:")
top = wb["top_k"]
assert len(top) == 10 and all(0 <= p <= 1 for _, _, p, _ in top), top
print("api: cellgpt.open('gpt2') top token", repr(top[0][1]))
assert (cache_dir() / "weights").is_dir(), "the weights cache belongs in the user cache dir"
assert not list(package.rglob(".cache")), "something wrote a cache into site-packages"

# GPT-4's and GPT-4o's tokenizers by name, from the rank tables inside the wheel.
from cellgpt.tokenizer.named import load_tokenizer  # noqa: E402

assert load_tokenizer("cl100k_base").encode("hello world") == [15339, 1917]
assert load_tokenizer("o200k_base").encode("hello world") == [24912, 2375]
print("tokenizers: cl100k_base and o200k_base by name")


# The TUI, one screen under Textual's pilot.
async def first_screen() -> str:
    from cellgpt.tui.app import CellGptApp

    app = CellGptApp(loader=lambda: cellgpt.open("gpt2", prompt="ROMEO:"))
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):  # the workbook loads and runs in a worker
            await pilot.pause(0.1)
            if app.wb is not None and app.wb.status("top_k").name == "FRESH":
                break
        else:
            raise AssertionError("the TUI never showed a computed top_k")
        return app.export_screenshot()


svg = asyncio.run(first_screen())
assert "h0" in svg and "ROMEO" in svg, "first screen lacks the blocks or the prompt"
print("tui: first screen drawn")
after = package_files()
written = [p for p in after if before.get(p) != after[p]]
assert not written, f"files written inside the package: {written[:5]}"
print("wheel smoke test: ok", file=sys.stderr)
