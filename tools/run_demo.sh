#!/usr/bin/env bash
# The main job: set-up, the embedded shapes data, `mim train`, `mim test` of the
# EMA checkpoint in train and deploy form, and pictures of the predictions.
# Extra arguments go to `mim train` (e.g. --cfg-options ...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
# shellcheck disable=SC1091
source "${MMRIFORMER_VENV:-$ROOT/.venv}/bin/activate"

CONFIG=configs/demo/rtdetr_riformer_s12_shapes.py
DEPLOY_CONFIG=configs/demo/rtdetr_riformer_s12_shapes_deploy.py
WORK=${WORK_DIR:-work_dirs/rtdetr_riformer_s12_shapes}
say() { echo "[demo] $*"; }

say "training $CONFIG (the data is made under data/shapes/ on first use)"
start=$(date +%s)
mim train mmdet "$CONFIG" --work-dir "$WORK" "$@"
train_s=$(( $(date +%s) - start ))
ckpt=$(cat "$WORK/last_checkpoint")

say "testing $ckpt (EMA weights); pictures of the predictions go to vis/"
mim test mmdet "$CONFIG" --checkpoint "$ckpt" --work-dir "$WORK/test" \
  --show-dir vis 2>&1 | tee "$WORK/test.log"
say "re-parameterising into the deploy form and testing it"
python tools/model_converters/reparameterize.py "$CONFIG" "$ckpt" \
  "$WORK/deploy.pth" --deploy-config "$DEPLOY_CONFIG"
mim test mmdet "$DEPLOY_CONFIG" --checkpoint "$WORK/deploy.pth" \
  --work-dir "$WORK/test_deploy" 2>&1 | tee "$WORK/test_deploy.log"

vis=$(ls -d "$WORK"/test/*/vis | tail -1)
echo
say "training took ${train_s} s"
say "checkpoint:  $ckpt (deploy form: $WORK/deploy.pth)"
say "metrics:     $(grep -h 'bbox_mAP_copypaste' "$WORK/test.log" | tail -1 | sed 's/.*copypaste: /mAP mAP50 mAP75 mAPs mAPm mAPl = /')"
say "             deploy form: $(grep -h 'bbox_mAP_copypaste' "$WORK/test_deploy.log" | tail -1 | sed 's/.*copypaste: //')"
say "             logs and scalars under $WORK/test/ and $WORK/test_deploy/"
say "pictures:    $vis"
