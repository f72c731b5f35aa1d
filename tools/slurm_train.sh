#!/usr/bin/env bash
# Training under Slurm, mmdet's interface: PARTITION JOB_NAME CONFIG WORK_DIR
# [train.py args]; GPUS, GPUS_PER_NODE, CPUS_PER_TASK and SRUN_ARGS come from
# the environment. The interpreter is the python of the venv MMRIFORMER_VENV
# (default: <repo>/.venv, if there is one; else `python` on PATH); PYTHON is
# only setup_env.sh's (see its top).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMRIFORMER_VENV:-$ROOT/.venv}"
PY=python
if [ -n "${MMRIFORMER_VENV:-}" ] || [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"; fi

# SRUN_ARGS holds several srun options: split on purpose.
# shellcheck disable=SC2086
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PY" -u "$ROOT/tools/train.py" "${CONFIG}" \
    --work-dir="${WORK_DIR}" --launcher="slurm" "${@:5}"
