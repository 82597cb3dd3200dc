#!/usr/bin/env bash
# Everything the tests need on a fresh machine, then the tests (the README's second command):
#   1. LibreOffice, a system package: the export tests recalculate .xlsx files with it;
#   2. the test extras (pytest, and the independent references PyTorch, transformers,
#      tiktoken), PyTorch from its CPU wheel index rather than the CUDA build (several GB);
#   3. python -m pytest, with any arguments given to this script.
# Run it inside a virtual environment, from anywhere in the clone.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v soffice >/dev/null 2>&1; then
    echo "+ installing LibreOffice (the export tests recalculate workbooks with it)"
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libreoffice-calc-nogui
    elif command -v brew >/dev/null 2>&1; then
        brew install --cask libreoffice
    else
        echo "scripts/test.sh: install LibreOffice (soffice) with your package manager, then rerun" >&2
        exit 1
    fi
fi

# PyTorch first, from its CPU index, at the version the test extras pin; unreachable (offline,
# a mirror), the test extras bring it from the usual index instead.
if ! python -c "import torch" >/dev/null 2>&1; then
    torch_req=$(python - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]["test"]
print(next(r for r in extras if r.startswith("torch")))
PY
)
    echo "+ pip install '$torch_req' from PyTorch's CPU index"
    python -m pip install --quiet --retries 1 --timeout 30 \
        --index-url https://download.pytorch.org/whl/cpu "$torch_req" \
        || echo "(PyTorch's CPU index is unreachable: torch comes with the test extras)"
fi

echo "+ pip install -e '.[test]'"
python -m pip install --quiet -e '.[test]'

echo "+ python -m pytest $*"
exec python -m pytest "$@"
