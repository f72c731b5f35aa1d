# Copyright (c) OpenMMLab. All rights reserved.
"""The test metrics of an exported detector, from its runtime alone.

The images and annotations come from the config's test dataset and the
metrics from its test evaluator (mmdet's ``CocoMetric`` in every config
here), as ``mim test`` computes them for the PyTorch model; the model is
the exported file, run by onnxruntime or OpenVINO
(:meth:`ExportedDetector.detect`).
"""
from typing import Dict

import torch
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.utils import track_iter_progress

from .exported_detector import ExportedDetector
from .preprocess import read_image


def evaluate_onnx(detector: ExportedDetector, cfg: Config,
                  progress: bool = True) -> Dict[str, float]:
    """Run ``detector`` on the config's test set and evaluate it.

    Args:
        detector (ExportedDetector): The exported detector, e.g. an
            :class:`ONNXRuntimeDetector` or an :class:`OpenVINODetector`.
        cfg (Config): A config with ``test_dataloader.dataset`` and
            ``test_evaluator``.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict[str, float]: The evaluator's metrics, e.g.
        ``coco/bbox_mAP``.

    Raises:
        ValueError: The file's classes are not the dataset's.
    """
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmdet')):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        classes = tuple(dataset.metainfo['classes'])
        if detector.classes != classes:
            raise ValueError(
                f'{detector.path} detects the classes {detector.classes}, '
                f'the test set of the config has {classes}: export the '
                f'checkpoint trained on this dataset, or give the config it '
                f'was trained with.')
        evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = dataset.metainfo
    indices = range(len(dataset))
    for index in track_iter_progress(indices) if progress else indices:
        info = dataset.get_data_info(index)
        image = read_image(info['img_path'])
        evaluator.process([
            dict(img_id=info['img_id'], ori_shape=image.shape[:2],
                 instances=info['instances'],
                 pred_instances={
                     key: torch.from_numpy(value)
                     for key, value in detector.detect(image).items()
                 })
        ])
    return evaluator.evaluate(len(dataset))
