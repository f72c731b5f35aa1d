# Copyright (c) OpenMMLab. All rights reserved.
import random
from numbers import Real
from typing import List, Sequence, Tuple

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import Tensor, nn

# DEIM's range of the weight of a batch's own images.
WEIGHT_RANGE = (0.45, 0.55)


@MODELS.register_module()
class DEIMBatchMixUp(nn.Module):
    """DEIM's mixup: each image of a batch blended with its predecessor.

    A batch augment of mmdet's ``DetDataPreprocessor`` (``batch_augments``),
    where DEIM does it in its collate function: with probability ``prob``,
    and only in the (0-based) epochs ``epochs[0] <= epoch < epochs[1]``,
    one weight ``w`` is drawn from [0.45, 0.55] (rounded to 6 decimals) and
    image ``i`` becomes ``w * image[i] + (1 - w) * image[i - 1]`` (the
    first image takes the last). Its instances become its own followed by
    those of image ``i - 1``, as DEIM concatenates boxes and labels; both
    keep full weight in the loss (DEIM records the blend weights per box,
    but its losses do not read them). Images of a batch share their padded
    size, and each keeps its boxes' coordinates, so boxes stay on their
    content; ``img_shape`` becomes the larger of the two.

    Mixing normalized images equals normalizing mixed ones, so it may run
    after normalization, as batch augments do. List it before a batch
    resize (``BatchRandomChoiceResize``): DEIM mixes, then resizes.

    The epoch is read from mmengine's ``MessageHub`` (set before each
    training epoch by the runner's ``RuntimeInfoHook``); the augment runs in
    the main process, so no worker keeps a stale epoch.

    Args:
        prob (float): The chance that a batch in the window is mixed.
            Defaults to 0.5.
        epochs (Sequence[int]): ``[start, end)``, the 0-based epochs that
            may mix. Defaults to (4, 29), DEIM's.
    """

    def __init__(self,
                 prob: float = 0.5,
                 epochs: Sequence[int] = (4, 29)) -> None:
        super().__init__()
        if not isinstance(prob, Real) or not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob!r}')
        if (not isinstance(epochs, Sequence) or len(epochs) != 2
                or not all(isinstance(e, int) for e in epochs)
                or not 0 <= epochs[0] <= epochs[1]):
            raise ValueError(f'epochs must be [start, end), two ints with '
                             f'0 <= start <= end, got {epochs!r}')
        self.prob = prob
        self.epochs = tuple(epochs)

    def forward(self, inputs: Tensor, data_samples: List[DetDataSample]
                ) -> Tuple[Tensor, List[DetDataSample]]:
        """Mix the batch and merge its instances.

        Args:
            inputs (Tensor): Images, shape (N, C, H, W).
            data_samples (list[DetDataSample]): Their samples; the mixed
                ones get new ``gt_instances`` (and ``ignored_instances``)
                and ``img_shape``.

        Returns:
            tuple: The images and the samples.
        """
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        # As DEIM: the draw comes first, in every epoch.
        if not (random.random() < self.prob
                and self.epochs[0] <= epoch < self.epochs[1]):
            return inputs, data_samples
        weight = round(random.uniform(*WEIGHT_RANGE), 6)
        inputs = inputs * weight + inputs.roll(1, dims=0) * (1 - weight)
        previous = data_samples[-1:] + data_samples[:-1]
        mixed = []
        for sample, other in zip(data_samples, previous):
            new = sample.clone()
            for field in ('gt_instances', 'ignored_instances'):
                if field in sample and field in other:
                    setattr(new, field,
                            InstanceData.cat(
                                [sample.get(field),
                                 other.get(field)]))
            new.set_metainfo({
                'img_shape':
                tuple(
                    max(a, b)
                    for a, b in zip(sample.img_shape, other.img_shape))
            })
            mixed.append(new)
        return inputs, mixed
