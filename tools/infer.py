# Copyright (c) OpenMMLab. All rights reserved.
"""Detect objects in images with a trained detector and draw the results.

``pytorch`` (the default backend) takes a config and a checkpoint;
``onnxruntime`` takes a file of ``tools/deployment/export_onnx.py`` alone.
Both write the drawn images into ``OUT_DIR/vis/`` and the detections into
``OUT_DIR/predictions.json``; what they hold, and how the outputs are
checked before the work (an existing file is replaced only with
``--force``): :mod:`mmriformer.apis.inference`.

Examples::

    python tools/infer.py configs/rtdetr_riformer_s24.py epoch_72.pth \\
        demo/ --out-dir work_dirs/infer --score-thr 0.5 --deploy
    python tools/infer.py --backend onnxruntime model.onnx demo/ \\
        --out-dir work_dirs/infer_ort
"""
import argparse
import os.path as osp
import pickle
import sys

from mmengine.config import DictAction

from mmriformer.apis import infer, infer_onnxruntime


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Detect objects in images and draw the results.')
    parser.add_argument(
        'model', nargs='+', metavar='MODEL',
        help='CONFIG CHECKPOINT (pytorch) or MODEL.onnx (onnxruntime)')
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument(
        '--backend', choices=('pytorch', 'onnxruntime'), default='pytorch',
        help='pytorch: a config and a checkpoint (default); onnxruntime: '
        'a file of tools/deployment/export_onnx.py')
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
    args = parser.parse_args()
    if args.backend == 'pytorch' and len(args.model) != 2:
        parser.error('the pytorch backend takes CONFIG CHECKPOINT INPUT')
    if args.backend == 'onnxruntime':
        if len(args.model) != 1:
            parser.error('the onnxruntime backend takes MODEL.onnx INPUT '
                         '(no config or checkpoint)')
        # The exported file is already in deploy form, with its config
        # baked in; onnxruntime runs it on the CPU here.
        pytorch_only = [option for option, given in (
            ('--deploy', args.deploy),
            ('--cfg-options', args.cfg_options),
            ('--device', args.device != 'cpu')) if given]
        if pytorch_only:
            parser.error(f'{", ".join(pytorch_only)}: for the pytorch '
                         f'backend only')
    return args


def main() -> None:
    args = parse_args()
    try:
        if args.backend == 'onnxruntime':
            predictions = infer_onnxruntime(args.model[0], args.input,
                                            args.out_dir, args.score_thr,
                                            args.force)
        else:
            predictions = infer(*args.model, args.input, args.out_dir,
                                args.score_thr, args.device, args.deploy,
                                args.cfg_options, args.force)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')
    count = sum(len(p['detections']) for p in predictions)
    print(f'{count} detections above {args.score_thr} in '
          f'{len(predictions)} images: drawn in '
          f'{osp.join(args.out_dir, "vis")}, listed in '
          f'{osp.join(args.out_dir, "predictions.json")}')


if __name__ == '__main__':
    main()
