#!/usr/bin/env bash
# Create the project's virtual environment (.venv) if it is missing or incomplete, with pip.
# Version ranges (not pins) in pyproject.toml let a machine's preinstalled torch be reused:
# set TRSPOSE_SYSTEM_SITE_PACKAGES=1 to build the venv on top of the system's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/trspose ] && .venv/bin/python -c "import trspose, torch, timm, anny, pycocotools, pytest" 2>/dev/null; then
  exit 0
fi
echo "setting up .venv (first time: a few minutes)..." >&2
if [ "${TRSPOSE_SYSTEM_SITE_PACKAGES:-0}" = "1" ]; then
  python3 -m venv --system-site-packages .venv
else
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
echo "environment ready: .venv" >&2
