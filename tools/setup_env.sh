#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in ./.venv.
#
# Idempotent: each step checks whether its result is already there, so a
# second run takes seconds. The mmcv 2.1.0 wheel is built from source once per
# torch version and kept in a cache keyed by that version, because a wheel
# built against one torch ABI crashes under another.
#
# Environment (each name means the same in every script of tools/ and .ci/):
#   PYTHON                the base interpreter that creates the venv, Python >= 3.10
#                         (default: python3.11). Only this script reads it; the
#                         scripts that run tools run the venv's own python.
#   MMRIFORMER_VENV       the venv (default: <repo>/.venv). run_tests.sh, run_demo.sh
#                         and .ci/run run "$MMRIFORMER_VENV/bin/python"; so do
#                         dist_train.sh, dist_test.sh and slurm_train.sh when it is
#                         set or <repo>/.venv exists (else `python` on PATH)
#   MMRIFORMER_WHEELS     wheel cache (default: <pip cache dir>/mmriformer-wheels)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMRIFORMER_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
STEP=""
TEMPORARY=()  # folders removed when the script ends, however it ends

log() { echo "[setup] $*"; }
fail() { echo "[setup] FAILED at step '$STEP' (see the output above)." >&2; }
cleanup() { if [ "${#TEMPORARY[@]}" -gt 0 ]; then rm -rf "${TEMPORARY[@]}"; fi; }
trap 'fail' ERR
trap 'cleanup' EXIT
step() { STEP="$1"; log "$1"; }

# mmcv 2.1.0 compiles with -std=c++17; torch >= 2.14 headers need C++20.
use_cxx20() {  # use_cxx20 SETUP_PY: switch mmcv's C++ standard flag to C++20
  local linux_line="extra_compile_args['cxx'] = ['-std=c++17']"
  if ! grep -qF -- "$linux_line" "$1"; then
    echo "[setup] FAILED: $1 does not hold the expected text \"$linux_line\"," \
      "so it cannot be switched to C++20; check how this mmcv version sets the C++" \
      "standard and adapt use_cxx20 in tools/setup_env.sh" >&2
    return 1
  fi
  sed -i "s/'-std=c[+][+]17'/'-std=c++20'/g" "$1"
  if grep -qF -- "'-std=c++17'" "$1" || ! grep -qF -- "${linux_line/17/20}" "$1"; then
    echo "[setup] FAILED: switching $1 to C++20 left \"$linux_line\" or" \
      "'-std=c++17' in it; adapt use_cxx20 in tools/setup_env.sh" >&2
    return 1
  fi
}

step "create virtual environment at $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || { echo "[setup] FAILED: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "[setup] FAILED: $PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); mmriformer needs >= 3.10: set PYTHON=/path/to/python3.11" >&2; exit 1; }
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

have() {  # have DIST VERSION -> true when exactly that version is installed
  "$PY" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split('+')[0] == sys.argv[2] else 1)
PY
}

step "torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION"
if ! have torch "$TORCH_VERSION" || ! have torchvision "$TORCHVISION_VERSION"; then
  "${PIP[@]}" install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

step "build tools (setuptools>=77,<81 keeps pkg_resources for mmcv, mim and mmdet:: configs)"
if ! "$PY" -c "import ninja, psutil, wheel, pkg_resources, setuptools as s; assert 77 <= int(s.__version__.split('.')[0]) < 81" 2>/dev/null; then
  "${PIP[@]}" install -q "setuptools>=77,<81" wheel ninja psutil
fi

WHEELS="${MMRIFORMER_WHEELS:-$("${PIP[@]}" cache dir 2>/dev/null || echo "$HOME/.cache/pip")/mmriformer-wheels}"
TORCH_TAG="torch$("$PY" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
MMCV_DIR="$WHEELS/mmcv-$MMCV_VERSION-$TORCH_TAG"

step "mmcv $MMCV_VERSION with compiled ops for $TORCH_TAG"
if ! "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  # mmcv's own dependencies; its wheel is installed with --no-deps below.
  "${PIP[@]}" install -q numpy opencv-python-headless "mmengine==0.10.7" \
    addict packaging Pillow pyyaml yapf
  if ! ls "$MMCV_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    log "no cached wheel in $MMCV_DIR: building mmcv from source (20-30 min on 2 cores)"
    SRC="$(mktemp -d)"
    TEMPORARY+=("$SRC" "$MMCV_DIR.partial")
    "${PIP[@]}" download -q --no-deps --no-binary :all: -d "$SRC" "mmcv==$MMCV_VERSION"
    tar -xzf "$SRC/mmcv-$MMCV_VERSION.tar.gz" -C "$SRC"
    if grep -q 'C++20 or later' "$("$PY" -c 'import torch.utils.cpp_extension as c; print(c.include_paths()[0])')/ATen/ATen.h"; then
      log "torch headers need C++20: building mmcv with -std=c++20"
      use_cxx20 "$SRC/mmcv-$MMCV_VERSION/setup.py"
    fi
    mkdir -p "$MMCV_DIR.partial"
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      "${PIP[@]}" wheel --no-build-isolation --no-deps --no-cache-dir \
      -w "$MMCV_DIR.partial" "$SRC/mmcv-$MMCV_VERSION"
    rm -rf "$MMCV_DIR" && mv "$MMCV_DIR.partial" "$MMCV_DIR"
  fi
  "${PIP[@]}" install --no-deps --force-reinstall "$MMCV_DIR"/mmcv-*.whl
  "$PY" -c "import mmcv._ext" || { echo "[setup] FAILED: 'import mmcv._ext' fails with the wheel in $MMCV_DIR (error above); if it lacks compiled ops, delete that folder and rerun" >&2; exit 1; }
fi

step "OpenMMLab stack and test tools (requirements/*.txt)"
if ! "$PY" -c "import mmriformer" 2>/dev/null || [ "$ROOT/setup.py" -nt "$VENV/.mmriformer-installed" ] \
   || [ -n "$(find "$ROOT/requirements" -newer "$VENV/.mmriformer-installed" 2>/dev/null)" ] \
   || [ ! -e "$VENV/.mmriformer-installed" ]; then
  "${PIP[@]}" install -r "$ROOT/requirements/mminstall.txt" -r "$ROOT/requirements/runtime.txt" \
    -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/optional.txt" "setuptools>=77,<81"
  "${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"
  # openmim drags in openxlab, which pins setuptools 60; mmcv, mim and mmdet::
  # bases need pkg_resources from a setuptools in [77, 81).
  "${PIP[@]}" install -q "setuptools>=77,<81"
  touch "$VENV/.mmriformer-installed"
fi

step "check the environment"
"$PY" - <<'PY'
import importlib.metadata as md
import mmcv, mmcv._ext, mmdet, mmengine, mmpretrain, pkg_resources  # noqa
import mmdet.models, mmpretrain.models  # noqa
import mmriformer  # noqa
for dist in ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet', 'mmpretrain', 'setuptools'):
    print(f'[setup]   {dist:12s} {md.version(dist)}')
PY
log "done: activate with 'source $VENV/bin/activate'"
