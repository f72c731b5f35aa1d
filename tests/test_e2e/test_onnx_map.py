# Copyright (c) OpenMMLab. All rights reserved.
"""The mAP of a trained detector survives the export and INT8 quantisation.

The model overfits four images with the real Runner; the command-line tools
then export it (verified against PyTorch on those images) to ONNX and to
OpenVINO IRs in f32 and int8, quantise the ONNX file (calibrated on them)
and evaluate every file (the f32 IR in f32 and bf16) on the same set,
through the config's dataset and ``CocoMetric``.
"""
import json
import subprocess
import sys

import pytest
from mmengine.runner import Runner
from overfit_config import ITERS, ROOT, overfit_config

TOOLS = ROOT / 'tools/deployment'


def run_tool(name, *args):
    proc = subprocess.run([sys.executable, str(TOOLS / name), *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_exported_and_int8_map(tmp_path):
    cfg = overfit_config(tmp_path)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict(type='TestLoop')
    runner = Runner.from_cfg(cfg)
    runner.train()
    pytorch_map = runner.message_hub.get_scalar(
        'val/coco/bbox_mAP').current()
    assert pytorch_map >= 0.9  # it learnt, as in test_overfit.py

    config = tmp_path / 'config.py'
    cfg.dump(config)
    checkpoint = tmp_path / 'work_dir' / f'iter_{ITERS}.pth'
    images = tmp_path / 'data' / 'train'
    model, int8 = tmp_path / 'model.onnx', tmp_path / 'model_int8.onnx'
    run_tool('export_onnx.py', config, checkpoint, model, '--verify-images',
             *sorted(images.iterdir()))
    run_tool('quantize_onnx.py', model, int8, '--calibration-images', images)
    ir, ir_int8 = tmp_path / 'model.xml', tmp_path / 'model_int8.xml'
    run_tool('export_openvino.py', config, checkpoint, ir, '--verify-images',
             *sorted(images.iterdir()))
    run_tool('export_openvino.py', config, checkpoint, ir_int8, '--precision',
             'int8', '--calibration-images', images, '--verify-images',
             *sorted(images.iterdir()))
    maps = {}
    for name, path, *runtime in (
            ('onnxruntime', model), ('onnxruntime INT8', int8),
            ('OpenVINO f32', ir, '--backend', 'openvino'),
            ('OpenVINO bf16', ir, '--backend', 'openvino', '--precision',
             'bf16'),
            ('OpenVINO int8', ir_int8, '--backend', 'openvino')):
        out = tmp_path / f'{name}.json'
        run_tool('test_onnx.py', config, path, '--out', out, *runtime)
        maps[name] = json.loads(out.read_text())['coco/bbox_mAP']
    print(f'mAP: PyTorch {pytorch_map:.3f}, ' +
          ', '.join(f'{name} {value:.3f}' for name, value in maps.items()))
    # The export's detections match PyTorch's on these images (scores to
    # 1e-4, boxes to 0.1 px), so only a box at an IoU threshold could
    # differ: one detection moves one class's AP at one of the 10
    # thresholds, at most 1 / (6 classes x 10) of the mAP.
    for name in ('onnxruntime', 'OpenVINO f32'):
        assert maps[name] == pytest.approx(pytorch_map, abs=1 / 60)
    # Reduced precisions keep the bar of learning.
    for name in ('onnxruntime INT8', 'OpenVINO bf16', 'OpenVINO int8'):
        assert maps[name] >= 0.9
