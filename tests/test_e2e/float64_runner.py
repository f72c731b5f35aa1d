# Copyright (c) OpenMMLab. All rights reserved.
"""Training and testing in float64, for tests that compare two runs whose
float32 rounding would differ (e.g. 1 x 4 images against 2 x 2 under DDP).
A test config imports this module through ``custom_imports`` and sets
``runner_type='Float64Runner'`` and
``model.data_preprocessor.type='Float64DetDataPreprocessor'``."""
import torch
from mmdet.models import DetDataPreprocessor
from mmdet.registry import MODELS
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


@RUNNERS.register_module()
class Float64Runner(Runner):
    """:class:`mmengine.runner.Runner` whose model is cast to float64 before
    it is wrapped, so DDP buckets hold float64 gradients."""

    def build_model(self, model):
        return super().build_model(model).double()


@MODELS.register_module()
class Float64DetDataPreprocessor(DetDataPreprocessor):
    """mmdet's preprocessor, with images and ground-truth boxes cast to
    float64 at the end."""

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        data['inputs'] = data['inputs'].double()
        for sample in data['data_samples']:
            if 'gt_instances' in sample:
                gt = sample.gt_instances
                gt.bboxes = gt.bboxes.to(torch.float64)
        return data
