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
import os
import os.path as osp
import pickle
import sys
import tempfile
from typing import List, Optional, Sequence

import numpy as np
from mmengine.config import DictAction

from mmriformer.datasets import generate_shapes_dataset
from mmriformer.deployment import (DeployedDetector, config_input_size,
                                   export_onnx, load_detector, read_image,
                                   verify_onnx)
from mmriformer.utils.cli_checks import check_output_file


def verification_images(paths: Optional[Sequence[str]]) -> List[np.ndarray]:
    """The given images decoded, or three generated shapes images of
    320 x 240 (not square, so the rescaling of boxes is checked)."""
    if paths:
        return [read_image(path) for path in paths]
    with tempfile.TemporaryDirectory() as root:
        generate_shapes_dataset(root, 'val', num_images=3,
                                image_size=(320, 240), empty_ratio=0.)
        folder = osp.join(root, 'val')
        return [read_image(osp.join(folder, name))
                for name in sorted(os.listdir(folder))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export an RT-DETR to ONNX and check it with '
        'onnxruntime.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument(
        '--size', type=int, nargs=2, metavar=('H', 'W'),
        help="input size, multiples of 32; defaults to the test "
        "pipeline's Resize scale")
    parser.add_argument(
        '--dynamic-batch', action='store_true',
        help='let the batch size vary (fixed to 1 without); opset >= 18')
    parser.add_argument(
        '--opset', type=int, default=20,
        help='ONNX opset, at least 16 (default 20, the first with Gelu; 16 '
        'and 17 use torch\'s deprecated TorchScript-based exporter)')
    parser.add_argument('--simplify', action='store_true',
                        help='fold constants and drop unused nodes')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the onnxruntime check')
    parser.add_argument('--verify-images', nargs='+', metavar='IMAGE',
                        help='images for the check (default: 3 generated)')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT if it exists')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. '
        'model.bbox_head.num_classes=3')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        check_output_file(args.out, args.force)
        model, cfg, dataset_meta = load_detector(
            args.config, args.checkpoint, args.cfg_options)
        size = tuple(args.size or config_input_size(cfg))
        if size[0] % 32 or size[1] % 32:
            # The data preprocessor would pad them, which RT-DETR refuses.
            raise ValueError(f'--size {size[0]} {size[1]}: give multiples '
                             f'of 32')
        images = None if args.no_verify else verification_images(
            args.verify_images)
        deployed = DeployedDetector(model)
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
