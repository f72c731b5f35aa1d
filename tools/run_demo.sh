#!/usr/bin/env bash
# Set up the environment (idempotent) and run the main job.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${MMRIFORMER_VENV:-$ROOT/.venv}/bin/python" tools/backbone_demo.py "$@"
