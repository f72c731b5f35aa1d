# Copyright (c) OpenMMLab. All rights reserved.
"""The test metrics (COCO mAP) of an exported RT-DETR, run by onnxruntime.

The images, annotations and metrics are the config's (``test_dataloader``
and ``test_evaluator``, as ``mim test`` uses them); the detector is the ONNX
file, float32 or INT8, without PyTorch in the loop for the model. An
export matches the PyTorch deploy form to 1e-4, so its mAP is the one
``mim test`` gives; for an INT8 file this measures what quantisation cost.

Example::

    python tools/deployment/test_onnx.py \\
        configs/demo/rtdetr_riformer_s12_shapes.py \\
        work_dirs/demo/model_int8.onnx --out work_dirs/demo/int8.json
"""
import argparse
import json
import sys

from mmengine.config import Config, DictAction

from mmriformer.deployment import ONNXRuntimeDetector, evaluate_onnx


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate an exported RT-DETR with onnxruntime on the '
        "config's test set.")
    parser.add_argument('config', help='config file (test set and metric)')
    parser.add_argument('model', help='ONNX file from export_onnx.py or '
                        'quantize_onnx.py')
    parser.add_argument('--out', help='write the metrics as JSON here')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'test_dataloader.dataset.data_root=data/coco/')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        detector = ONNXRuntimeDetector(args.model)
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        metrics = evaluate_onnx(detector, cfg)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    for name, value in metrics.items():
        print(f'{name}: {value}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(model=args.model, config=args.config, **metrics),
                      f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
