"""The README's second command, `bash scripts/test.sh`, sets up a fresh machine by itself:
LibreOffice when `soffice` is missing (apt-get, through sudo when not root), the test extras
from PyTorch's CPU index, then pytest with the script's arguments. .ci/run runs that line.

The script runs here against stand-ins for apt-get, sudo, id and python that record their
arguments, so nothing is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test.sh"


def _test_extras() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["optional-dependencies"]["test"])


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{shutil.which('bash')}\n{body}\n")
    path.chmod(0o755)


def _machine(tmp_path: Path, *, uid: int, soffice: bool) -> tuple[Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("dirname", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    _stub(bin_dir, "id", f"echo {uid}")
    _stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}')
    # python: `-c "import torch"` fails (a fresh machine); `-` (reading pyproject.toml) is the
    # real interpreter; anything else (pip, pytest) is recorded.
    real = sys.executable
    _stub(
        bin_dir,
        "python",
        f'case "$1" in -c) exit 1;; -) exec {real} "$@";; *) echo "python $*" >> {log};; esac',
    )
    _stub(bin_dir, "sudo", f'echo "sudo $*" >> {log}; exec "$@"')
    if soffice:
        _stub(bin_dir, "soffice", "true")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return log, env


@pytest.mark.parametrize(("uid", "sudo"), [(1000, True), (0, False)])
def test_a_machine_without_libreoffice_gets_it_then_the_extras_then_pytest(
    tmp_path: Path, uid: int, sudo: bool
) -> None:
    log, env = _machine(tmp_path, uid=uid, soffice=False)
    proc = subprocess.run(
        [shutil.which("bash") or "bash", str(SCRIPT), "tests/cli", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    apt = [c for c in calls if c.startswith("apt-get")]
    assert apt == [
        "apt-get update -qq",
        "apt-get install -y -qq libreoffice-calc-nogui",
    ]
    assert any(c.startswith("sudo ") for c in calls) == sudo
    torch, extras, pytest_call = [c for c in calls if c.startswith("python")]
    assert "--index-url https://download.pytorch.org/whl/cpu torch==" in torch
    assert torch.split()[-1] in _test_extras()  # the version the extras pin
    assert extras == "python -m pip install --quiet -e .[test]"
    assert pytest_call == "python -m pytest tests/cli -q"


def test_a_machine_with_libreoffice_installs_no_system_package(tmp_path: Path) -> None:
    log, env = _machine(tmp_path, uid=1000, soffice=True)
    proc = subprocess.run(
        [shutil.which("bash") or "bash", str(SCRIPT)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert not any(c.startswith(("apt-get", "sudo")) for c in calls)
    assert calls[-1] == "python -m pytest"


def test_readme_second_command_is_the_script_and_ci_runs_that_line() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```\n", 2)[1].splitlines()
    assert first_block == ['pip install -e . && cellgpt run "ROMEO:"', "bash scripts/test.sh"]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pattern = re.search(r'grep -m1 -E "(.+?)" README\.md', ci)
    assert pattern is not None and 'eval "$test_command"' in ci
    found = [
        line
        for line in readme.splitlines()
        if re.search(pattern.group(1).replace("\\\\", "\\"), line)
    ]
    assert found[0] == "bash scripts/test.sh"
    assert os.access(SCRIPT, os.X_OK)
    # The README's advice installs the version the test extras pin.
    pin = next(r for r in _test_extras() if r.startswith("torch"))
    assert f"pip install {pin} --index-url https://download.pytorch.org/whl/cpu" in readme
