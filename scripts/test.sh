#!/usr/bin/env bash
# Run the test suite (CPU). Creates .venv first if needed. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# one pytest worker per core (pytest-xdist), each with one thread: about twice as fast as one worker on 2 cores
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -q -n "${TRSPOSE_TEST_WORKERS:-auto}" "$@"
