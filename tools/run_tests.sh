#!/usr/bin/env bash
# Set up the environment (idempotent) and run the whole test suite with the
# venv's python. Extra arguments go to pytest, e.g.
# `bash tools/run_tests.sh -k riformer`. MMRIFORMER_VENV and PYTHON as described
# at the top of tools/setup_env.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${MMRIFORMER_VENV:-$ROOT/.venv}/bin/python" -m pytest tests "$@"
