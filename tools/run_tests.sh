#!/usr/bin/env bash
# Set up the environment (idempotent) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k riformer`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${MMRIFORMER_VENV:-$ROOT/.venv}/bin/python" -m pytest tests "$@"
