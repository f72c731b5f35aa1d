#!/usr/bin/env bash
# The main job: set-up, the embedded shapes data, `mim train`, `mim test` of the
# EMA checkpoint in train and deploy form, and pictures of the predictions.
#
# Usage: bash tools/run_demo.sh [--cfg-options KEY=VALUE ...]
#
# The --cfg-options reach every step: training, the test, the conversion into
# the deploy form and the test of that form, so that all of them build the same
# model on the same data. As in the config (test_dataloader = val_dataloader),
# val_dataloader.* and val_evaluator.* options also set test_dataloader.* and
# test_evaluator.* for the tests, unless those are given too. Other options of
# mim train or mim test do not apply to every step and are refused: for them,
# run the steps of this script by hand.
#
# Environment: WORK_DIR (default: work_dirs/rtdetr_riformer_s12_shapes);
# MMRIFORMER_VENV and PYTHON as described at the top of tools/setup_env.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "[demo] $*"; }
refuse() { echo "[demo] error: $*" >&2; exit 2; }

OPTIONS=()  # the --cfg-options, for every step
while [ $# -gt 0 ]; do
  case "$1" in
    --cfg-options)
      shift
      if [ $# -eq 0 ] || [[ "$1" == -* ]]; then refuse "--cfg-options needs KEY=VALUE pairs"; fi
      while [ $# -gt 0 ] && [[ "$1" != -* ]]; do OPTIONS+=("$1"); shift; done ;;
    -h|--help)
      sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    --work-dir|--work-dir=*)
      refuse "$1: set WORK_DIR=DIR instead; the steps write below it" ;;
    *)
      refuse "$1: only --cfg-options KEY=VALUE ... is taken, since it applies to" \
        "every step (training, test, deploy conversion, deploy test); run the" \
        "steps of tools/run_demo.sh by hand to give other options" ;;
  esac
done

# The tests also get the val_* options as test_* ones (see above).
TEST_OPTIONS=("${OPTIONS[@]}")
for option in "${OPTIONS[@]}"; do
  case "$option" in
    val_dataloader.*|val_evaluator.*) twin="test_${option#val_}" ;;
    *) continue ;;
  esac
  given=false
  for other in "${OPTIONS[@]}"; do
    if [ "${other%%=*}" = "${twin%%=*}" ]; then given=true; fi
  done
  if [ "$given" = false ]; then TEST_OPTIONS+=("$twin"); fi
done
TRAIN_ARGS=() TEST_ARGS=()
if [ "${#OPTIONS[@]}" -gt 0 ]; then
  TRAIN_ARGS=(--cfg-options "${OPTIONS[@]}")
  TEST_ARGS=(--cfg-options "${TEST_OPTIONS[@]}")
fi

bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
PY="${MMRIFORMER_VENV:-$ROOT/.venv}/bin/python"
MIM=("$PY" -m mim)

CONFIG=configs/demo/rtdetr_riformer_s12_shapes.py
DEPLOY_CONFIG=configs/demo/rtdetr_riformer_s12_shapes_deploy.py
WORK=${WORK_DIR:-work_dirs/rtdetr_riformer_s12_shapes}

say "training $CONFIG (the data is made under data/shapes/ on first use)"
start=$(date +%s)
"${MIM[@]}" train mmdet "$CONFIG" --work-dir "$WORK" "${TRAIN_ARGS[@]}"
train_s=$(( $(date +%s) - start ))
ckpt=$(cat "$WORK/last_checkpoint")

say "testing $ckpt (EMA weights); pictures of the predictions go to vis/"
"${MIM[@]}" test mmdet "$CONFIG" --checkpoint "$ckpt" --work-dir "$WORK/test" \
  --show-dir vis "${TEST_ARGS[@]}" 2>&1 | tee "$WORK/test.log"

say "reparameterizing into the deploy form and testing it"
"$PY" tools/model_converters/reparameterize.py "$CONFIG" "$ckpt" \
  "$WORK/deploy.pth" --deploy-config "$DEPLOY_CONFIG" --force "${TRAIN_ARGS[@]}"
"${MIM[@]}" test mmdet "$DEPLOY_CONFIG" --checkpoint "$WORK/deploy.pth" \
  --work-dir "$WORK/test_deploy" "${TEST_ARGS[@]}" 2>&1 | tee "$WORK/test_deploy.log"

vis=$(find "$WORK/test" -mindepth 2 -maxdepth 2 -type d -name vis | sort | tail -1)
echo
say "training took ${train_s} s"
say "checkpoint:  $ckpt (deploy form: $WORK/deploy.pth)"
say "metrics:     $(grep -h 'bbox_mAP_copypaste' "$WORK/test.log" | tail -1 | sed 's/.*copypaste: /mAP mAP50 mAP75 mAPs mAPm mAPl = /')"
say "             deploy form: $(grep -h 'bbox_mAP_copypaste' "$WORK/test_deploy.log" | tail -1 | sed 's/.*copypaste: //')"
say "             logs and scalars under $WORK/test/ and $WORK/test_deploy/"
say "pictures:    $vis"
