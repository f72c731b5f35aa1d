# Copyright (c) OpenMMLab. All rights reserved.
"""Export an RT-DETR to ONNX, post-processing inside, and check the file.

The file takes ``images`` (float32 RGB in [0, 1], N x 3 x H x W) and
``orig_target_sizes`` (int64 (width, height) rows, N x 2) and gives
``labels``, ``boxes`` (xyxy in original pixels) and ``scores`` of the top
``test_cfg.max_per_img`` detections, NMS-free: the official RT-DETR
interface. The class names go into its metadata. See
``mmriformer/deployment/preprocess.py`` for the pre-processing.

The model is exported in deploy form: a train-form checkpoint (with the
train-form config) is folded after loading; a deploy-form one needs the
deploy config. Unless ``--no-verify``, onnxruntime then runs the file on
real images (``--verify-images``, or a few generated shapes) and its
detections must match PyTorch's: scores to 1e-4, boxes to 0.1 px, labels
equal; otherwise the tool exits with an error. An existing OUT is replaced
only with ``--force``.

Example::

    python tools/deployment/export_onnx.py \\
        configs/demo/rtdetr_riformer_s12_shapes.py \\
        work_dirs/demo/epoch_8.pth work_dirs/demo/model.onnx --dynamic-batch
"""
import argparse
import os.path as osp
import pickle
import sys

from mmriformer.deployment import export_onnx, verify_onnx
from mmriformer.deployment.cli import export_parser, prepare_export
from mmriformer.utils.cli_checks import check_output_file


def parse_args() -> argparse.Namespace:
    parser = export_parser(
        'Export an RT-DETR to ONNX and check it with onnxruntime.',
        'the .onnx file to write')
    parser.add_argument(
        '--opset', type=int, default=20,
        help='ONNX opset, at least 16 (default 20, the first with Gelu; 16 '
        'and 17 use torch\'s deprecated TorchScript-based exporter and '
        'take no --dynamic-batch)')
    parser.add_argument('--simplify', action='store_true',
                        help='fold constants and drop unused nodes')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        check_output_file(args.out, args.force)
        deployed, dataset_meta, size, images = prepare_export(args)
        export_onnx(deployed, args.out, size, dataset_meta,
                    args.dynamic_batch, args.opset, args.simplify)
        print(f'Wrote {args.out} ({osp.getsize(args.out) / 2**20:.1f} MiB, '
              f'opset {args.opset}, input {size[0]}x{size[1]}, batch '
              f'{"dynamic" if args.dynamic_batch else 1})')
        if images is not None:
            diffs = verify_onnx(deployed, args.out, images)
            print(f'onnxruntime matches PyTorch on {len(images)} images: '
                  f'max score difference {diffs["max_score_diff"]:.2e}, '
                  f'max box difference {diffs["max_box_diff"]:.2e} px')
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
