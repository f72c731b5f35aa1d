# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's schedule items that differ by size, for
``configs/dfine/*.py``: multi-scale sizes, the end of strong augmentation
(``train_dataloader.collate_fn`` and ``policy`` in Peterande/D-FINE's
``configs/dfine/*.yml``) and its solver's return to the best state before
it."""
from typing import List, Optional, Tuple

from .rtdetrv2_recipe import strong_augment_switch

# What :func:`dfine_schedule` adds at the stop epoch; a config made from
# one replaces them.
STOP_EPOCH_HOOKS = ('PipelineSwitchHook', 'ReloadBestStage1Hook')


def multi_scales(base_size_repeat: int, base_size: int = 640) -> List[int]:
    """D-FINE's multi-scale sizes (``generate_scales``): the multiples of
    32 from ``0.75 * base_size`` up to ``base_size``, ``base_size``
    ``base_size_repeat`` times, and as many multiples of 32 down from
    ``1.25 * base_size``.

    Args:
        base_size_repeat (int): How often ``base_size`` is listed, so how
            much more often it is drawn; 3 gives RT-DETR's 13 sizes.
        base_size (int): The training size. Defaults to 640.

    Returns:
        list[int]: The sizes, in increasing order.
    """
    if base_size_repeat < 1:
        raise ValueError(f'base_size_repeat must be >= 1, got '
                         f'{base_size_repeat}; give None to the caller for '
                         f'single-scale training')
    low = int(base_size * 0.75 / 32) * 32
    high = int(base_size * 1.25 / 32) * 32
    steps = (base_size - low) // 32
    return ([low + 32 * i for i in range(steps)] +
            [base_size] * base_size_repeat +
            [high - 32 * i for i in reversed(range(steps))])


def dfine_schedule(base: dict, stop_epoch: int,
                   base_size_repeat: Optional[int]) -> Tuple[list, list]:
    """The batch augments and hooks of D-FINE's ``stop_epoch``.

    From epoch ``stop_epoch`` (0-based) on, batches keep the training size
    and the pipeline drops photometric distortion, zoom-out and IoU crop
    (D-FINE's ``policy.ops``), and the solver goes back to the best state
    before it (``ReloadBestStage1Hook``).

    Args:
        base (dict): The config this one inherits (its ``train_pipeline``
            and ``custom_hooks``; a pipeline switch or a
            ``ReloadBestStage1Hook`` there is replaced).
        stop_epoch (int): D-FINE's ``collate_fn.stop_epoch`` and
            ``policy.epoch``.
        base_size_repeat (int, optional): D-FINE's ``base_size_repeat``
            (see :func:`multi_scales`); None (``~``) trains at one size.

    Returns:
        tuple[list | None, list]: ``model.data_preprocessor.batch_augments``
        and ``custom_hooks``.
    """
    augments = None
    if base_size_repeat is not None:
        augments = [
            dict(type='BatchRandomChoiceResize',
                 scales=multi_scales(base_size_repeat),
                 stop_epoch=stop_epoch)
        ]
    hooks = [
        hook for hook in base.custom_hooks
        if hook['type'] not in STOP_EPOCH_HOOKS
    ] + [
        strong_augment_switch(base, stop_epoch),
        dict(type='ReloadBestStage1Hook', stop_epoch=stop_epoch)
    ]
    return augments, hooks
