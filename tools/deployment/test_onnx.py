# Copyright (c) OpenMMLab. All rights reserved.
"""The test metrics (COCO mAP) of an exported RT-DETR, run by onnxruntime
or OpenVINO.

The images, annotations and metrics are the config's (``test_dataloader``
and ``test_evaluator``, as ``mim test`` uses them); the detector is the ONNX
file (float32 or INT8) run by onnxruntime, or the OpenVINO IR
(``--backend openvino``, in the precision it was exported for or
``--precision``), without PyTorch in the loop for the model. A float32
export matches the PyTorch deploy form to 1e-4, so its mAP is the one
``mim test`` gives; for an INT8 file or bf16 this measures what the lower
precision cost.

Examples::

    python tools/deployment/test_onnx.py \\
        configs/demo/rtdetr_riformer_s12_shapes.py \\
        work_dirs/demo/model_int8.onnx --out work_dirs/demo/int8.json
    python tools/deployment/test_onnx.py \\
        configs/demo/rtdetr_riformer_s12_shapes.py work_dirs/demo/model.xml \\
        --backend openvino --precision bf16
"""
import argparse
import json
import sys

from mmengine.config import Config, DictAction

from mmriformer.deployment import evaluate_onnx
from mmriformer.deployment.cli import (add_runtime_arguments,
                                       check_runtime_arguments, open_exported)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate an exported RT-DETR with onnxruntime or '
        "OpenVINO on the config's test set.")
    parser.add_argument('config', help='config file (test set and metric)')
    parser.add_argument('model', help='ONNX file from export_onnx.py or '
                        'quantize_onnx.py, or OpenVINO IR (.xml) from '
                        'export_openvino.py')
    parser.add_argument('--backend', choices=('onnxruntime', 'openvino'),
                        default='onnxruntime',
                        help='the runtime (default onnxruntime)')
    add_runtime_arguments(parser)
    parser.add_argument('--out', help='write the metrics as JSON here')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'test_dataloader.dataset.data_root=data/coco/')
    args = parser.parse_args()
    check_runtime_arguments(parser, args)
    return args


def main() -> None:
    args = parse_args()
    try:
        detector = open_exported(args, args.model)
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        metrics = evaluate_onnx(detector, cfg)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    for name, value in metrics.items():
        print(f'{name}: {value}')
    if args.out:
        record = dict(model=args.model, config=args.config,
                      backend=args.backend)
        if args.backend == 'openvino':
            record.update(precision=detector.precision,
                          num_threads=detector.num_threads)
        with open(args.out, 'w') as f:
            json.dump(dict(record, **metrics), f, indent=2)
        print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
