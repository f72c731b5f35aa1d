# Copyright (c) OpenMMLab. All rights reserved.
"""Detect objects in images with a trained detector and draw the results.

``pytorch`` (the default backend) takes a config and a checkpoint;
``onnxruntime`` takes a file of ``tools/deployment/export_onnx.py`` alone,
``openvino`` an IR of ``tools/deployment/export_openvino.py`` (run on the
CPU in the precision it was exported for, or ``--precision``, with
``--num-threads`` threads, by default as many as the process may use).
All write the drawn images into ``OUT_DIR/vis/`` and the detections into
``OUT_DIR/predictions.json``; what they hold, and how the outputs are
checked before the work (an existing file is replaced only with
``--force``): :mod:`mmriformer.apis.inference`.

Examples::

    python tools/infer.py configs/rtdetr_riformer_s24.py epoch_72.pth \\
        demo/ --out-dir work_dirs/infer --score-thr 0.5 --deploy
    python tools/infer.py --backend onnxruntime model.onnx demo/ \\
        --out-dir work_dirs/infer_ort
    python tools/infer.py --backend openvino model.xml demo/ \\
        --out-dir work_dirs/infer_ov --precision bf16 --num-threads 8
"""
import argparse
import os.path as osp
import pickle
import sys

from mmengine.config import DictAction

from mmriformer.apis import infer, infer_exported
from mmriformer.deployment.cli import (add_runtime_arguments,
                                       check_runtime_arguments, open_exported)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Detect objects in images and draw the results.')
    parser.add_argument(
        'model', nargs='+', metavar='MODEL',
        help='CONFIG CHECKPOINT (pytorch), MODEL.onnx (onnxruntime) or '
        'MODEL.xml (openvino)')
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument(
        '--backend', choices=('pytorch', 'onnxruntime', 'openvino'),
        default='pytorch',
        help='pytorch: a config and a checkpoint (default); onnxruntime: '
        'a file of tools/deployment/export_onnx.py; openvino: an IR of '
        'tools/deployment/export_openvino.py')
    parser.add_argument('--out-dir', required=True,
                        help='gets vis/ and predictions.json; made if '
                        'missing, in an existing folder')
    parser.add_argument('--force', action='store_true',
                        help='replace the files of --out-dir this run '
                        'writes')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep and draw detections scoring above this')
    parser.add_argument('--device', default='cpu',
                        help='e.g. cpu, cuda:0 (pytorch only)')
    parser.add_argument('--deploy', action='store_true',
                        help='fold the model into its deploy form '
                        '(pytorch only)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.bbox_head.num_classes=3 (pytorch only)')
    add_runtime_arguments(parser)
    args = parser.parse_args()
    if args.backend == 'pytorch' and len(args.model) != 2:
        parser.error('the pytorch backend takes CONFIG CHECKPOINT INPUT')
    if args.backend != 'pytorch':
        if len(args.model) != 1:
            model = dict(onnxruntime='MODEL.onnx', openvino='MODEL.xml')
            parser.error(f'the {args.backend} backend takes '
                         f'{model[args.backend]} INPUT (no config or '
                         f'checkpoint)')
        # The exported file is already in deploy form, with its config
        # baked in; its runtime runs it on the CPU here.
        pytorch_only = [option for option, given in (
            ('--deploy', args.deploy),
            ('--cfg-options', args.cfg_options),
            ('--device', args.device != 'cpu')) if given]
        if pytorch_only:
            parser.error(f'{", ".join(pytorch_only)}: for the pytorch '
                         f'backend only')
    check_runtime_arguments(parser, args)
    return args


def main() -> None:
    args = parse_args()
    try:
        if args.backend == 'pytorch':
            predictions = infer(*args.model, args.input, args.out_dir,
                                args.score_thr, args.device, args.deploy,
                                args.cfg_options, args.force)
        else:
            predictions = infer_exported(open_exported(args, args.model[0]),
                                         args.input, args.out_dir,
                                         args.score_thr, args.force)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')
    count = sum(len(p['detections']) for p in predictions)
    print(f'{count} detections above {args.score_thr} in '
          f'{len(predictions)} images: drawn in '
          f'{osp.join(args.out_dir, "vis")}, listed in '
          f'{osp.join(args.out_dir, "predictions.json")}')


if __name__ == '__main__':
    main()
