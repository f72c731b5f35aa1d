#!/usr/bin/env bash
# Distributed testing, mmdet's interface: CONFIG CHECKPOINT GPUS [test.py args].
# NNODES, NODE_RANK, PORT and MASTER_ADDR come from the environment; on a host
# without CUDA each process runs on the CPU over gloo. The interpreter is the
# python of the venv MMRIFORMER_VENV (default: <repo>/.venv, if there is one;
# else `python` on PATH); PYTHON is only setup_env.sh's (see its top).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash $0 CONFIG CHECKPOINT GPUS [test.py args]" >&2
  exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMRIFORMER_VENV:-$ROOT/.venv}"
PY=python
if [ -n "${MMRIFORMER_VENV:-}" ] || [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"; fi

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"$PY" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
