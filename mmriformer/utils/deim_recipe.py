# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's recipe: its augmentation policy ("Dense O2O") as pipelines and
switch hooks (:func:`deim_policy`), and the whole recipe for RT-DETRv2 or
D-FINE as changes to an RT-DETR or D-FINE config (:func:`deim_changes`,
called by ``configs/deim/*.py`` as ``configs/rtdetrv2_*.py`` call
``rtdetrv2_changes``).

DEIM switches augmentations by epoch, ``policy.epoch: [a, b, c]`` with
``policy.ops`` (0-based epochs):

- ``[0, a)``: none of ``ops``;
- ``[a, b)``: per image, the mosaic with probability ``mosaic_prob``,
  and then no zoom-out or IoU crop; the other ops as usual;
- ``[b, c)``: all of ``ops`` but the mosaic;
- from ``c`` on: none of ``ops``.

:func:`deim_policy` turns a full training pipeline into the first stage's
pipeline and one mmdet ``PipelineSwitchHook`` per boundary; each switches
once, and after a resume all whose epoch has passed switch in order, so the
last one sets the pipeline. The mosaic and zoom-out/IoU crop exclusion is
mmcv's ``RandomChoice`` between the two branches; the mosaic in it takes
its other images from its cache (``use_cache=True``): in a branch it gets
no ``mix_results`` from ``MultiImageMixDataset``.

The rest of DEIM's schedule needs no hook: the batch mixup is
``DEIMBatchMixUp(prob, epochs=mixup_epochs)`` and the end of multi-scale
``BatchRandomChoiceResize(stop_epoch=c)``, both batch augments that read
the epoch from mmengine's ``MessageHub``.
"""
from numbers import Real
from typing import List, Optional, Sequence, Tuple

from .dfine_recipe import STOP_EPOCH_HOOKS
from .rtdetrv2_recipe import rtdetrv2_changes

# DEIM's policy ops, by our names: mmdet's Expand is RT-DETR's zoom-out.
POLICY_OPS = ('DEIMMosaic', 'RandomPhotometricDistort', 'Expand',
              'RandomIoUCrop')
# What an image with a mosaic skips.
NOT_WITH_MOSAIC = ('Expand', 'RandomIoUCrop')


def _without(pipeline: List[dict], types: Sequence[str]) -> List[dict]:
    """The pipeline without the transforms of the given types."""
    return [t for t in pipeline if t['type'] not in types]


def _mosaic_stage(pipeline: List[dict], mosaic_prob: float) -> List[dict]:
    """The pipeline with the mosaic or zoom-out and IoU crop, per image.

    The transforms from the mosaic to the last zoom-out or IoU crop become
    a ``RandomChoice`` of two branches: with the mosaic and without
    :data:`NOT_WITH_MOSAIC`, or without the mosaic.

    Args:
        pipeline (list[dict]): The full pipeline, one ``DEIMMosaic`` in it.
        mosaic_prob (float): The chance of the first branch.

    Returns:
        list[dict]: The pipeline of DEIM's second stage.
    """
    types = [t['type'] for t in pipeline]
    if types.count('DEIMMosaic') != 1:
        raise ValueError(f'the pipeline must hold one DEIMMosaic, got '
                         f'{types}')
    start = types.index('DEIMMosaic')
    if not pipeline[start].get('use_cache', True):
        raise ValueError(
            'DEIMMosaic must take its images from its cache '
            '(use_cache=True): inside RandomChoice it gets no mix_results')
    after = [i for i in range(start, len(types))
             if types[i] in NOT_WITH_MOSAIC]
    stop = (after[-1] if after else start) + 1
    block = pipeline[start:stop]
    choice = dict(
        type='RandomChoice',
        transforms=[_without(block, NOT_WITH_MOSAIC), block[1:]],
        prob=[mosaic_prob, 1 - mosaic_prob])
    return pipeline[:start] + [choice] + pipeline[stop:]


def deim_policy(pipeline: List[dict],
                epochs: Sequence[int] = (4, 29, 50),
                mosaic_prob: float = 0.5,
                ops: Sequence[str] = POLICY_OPS) -> Tuple[List[dict], list]:
    """DEIM's augmentation stages for an mmdet training pipeline.

    Args:
        pipeline (list[dict]): The full training pipeline: one
            ``DEIMMosaic`` (``use_cache=True``) before the zoom-out
            (``Expand``) and IoU crop.
        epochs (Sequence[int]): DEIM's ``policy.epoch``, three increasing
            0-based epochs. Defaults to DEIM's (4, 29, 50).
        mosaic_prob (float): DEIM's ``mosaic_prob``: the chance of the
            mosaic per image in the second stage. Defaults to 0.5.
        ops (Sequence[str]): DEIM's ``policy.ops``, by type. Defaults to
            :data:`POLICY_OPS`.

    Returns:
        tuple[list[dict], list[dict]]: The training pipeline of the first
        stage, and the three ``PipelineSwitchHook`` configs of the others.
    """
    if (len(epochs) != 3 or not all(isinstance(e, int) for e in epochs)
            or not 0 <= epochs[0] < epochs[1] < epochs[2]):
        raise ValueError(f'epochs must be three increasing ints >= 0, got '
                         f'{epochs!r}')
    if not isinstance(mosaic_prob, Real) or not 0 <= mosaic_prob <= 1:
        raise ValueError(f'mosaic_prob must be in [0, 1], got '
                         f'{mosaic_prob!r}')
    off = _without(pipeline, ops)
    stages = [
        _mosaic_stage(pipeline, mosaic_prob),
        _without(pipeline, ['DEIMMosaic']), off
    ]
    hooks = [
        dict(type='PipelineSwitchHook', switch_epoch=epoch,
             switch_pipeline=stage) for epoch, stage in zip(epochs, stages)
    ]
    return off, hooks


# DEIM's mosaic (configs/base/rt_deim.yml), from its cache: inside the
# policy's RandomChoice it gets no mix_results (see deim_policy).
MOSAIC = dict(
    type='DEIMMosaic',
    output_size=320,
    rotation_range=10,
    translation_range=(0.1, 0.1),
    scaling_range=(0.5, 1.5),
    probability=1.0,
    fill_value=0,
    use_cache=True,
    max_cached_images=50,
    random_pop=True)
# DEIM's decoder activation (rt_deim.yml, RTDETRTransformerv2: activation
# and mlp_act silu): in the FFNs, the query position MLP and the box
# branches.
SILU = dict(type='SiLU')
# DEIM's MAL (rt_deim.yml: gamma 1.5, loss_mal 1; no mal_alpha, so 1).
MAL = dict(
    type='MatchabilityAwareLoss',
    use_sigmoid=True,
    alpha=1.0,
    gamma=1.5,
    loss_weight=1.0)


def deim_changes(base: dict,
                 max_epochs: int,
                 no_aug_epoch: int,
                 start_epoch: int = 4,
                 flat_epoch: Optional[int] = None,
                 lr: float = 2e-4,
                 backbone_lr_mult: Optional[float] = None,
                 warmup_iter: int = 2000,
                 mosaic_size: int = 320,
                 multi_scale: bool = True,
                 lr_gamma: float = 0.5,
                 backbone_norm_lr_mult: Optional[float] = 1.0,
                 reload_best_stage1: bool = True) -> tuple:
    """The changes of DEIM's recipe for RT-DETRv2 on an RT-DETR config, or
    for D-FINE on a D-FINE config (``model.type='DFINE'``).

    On an RT-DETR config, RT-DETRv2's model and parameter groups
    (:func:`rtdetrv2_changes`: the sampling points per level, biases
    decayed, norms not); a D-FINE config keeps its own. Then DEIM's
    (``configs/base/rt_deim.yml``, ``configs/deim_rtdetrv2/*.yml``;
    ``configs/base/deim.yml``, ``configs/deim_dfine/*.yml``):

    - MAL as the classification loss (:data:`MAL`), and the box losses on
      the union of the outputs' matchings (``use_uni_set``; D-FINE's head
      always has it);
    - DEIM's decoder: SiLU (:data:`SILU`) in the layers' FFNs, the query
      position MLP and the box branches; for RT-DETRv2 a query position
      MLP of 3 layers (``query_pos_method='as_reg'``), for D-FINE SiLU in
      the pre-bbox head and the LQEs too;
    - a PResNet or HGNetV2 backbone with nothing frozen and its BatchNorms
      trained;
    - Dense O2O: :data:`MOSAIC` after ``LoadAnnotations`` and the policy
      stages (:func:`deim_policy`) at ``[start_epoch, flat_epoch,
      stop_epoch]``, mosaic probability 0.5; ``DEIMBatchMixUp`` (prob 0.5)
      in ``[start_epoch, flat_epoch)``; multi-scale batches until
      ``stop_epoch``, in the sizes of the base's ``BatchRandomChoiceResize``
      (D-FINE's per size), else RT-DETR's 13;
    - the backbone's norms at ``backbone_norm_lr_mult`` (``norm_lr_mult``
      of :class:`~mmriformer.engine.DecayPolicyOptimWrapperConstructor`);
    - AdamW at ``lr`` and ``FlatCosineLR`` (``lr_gamma``), flat until
      ``flat_epoch``, at its minimum for the last ``no_aug_epoch`` epochs;
    - the solver's return to the best state before ``stop_epoch``
      (:class:`~mmriformer.engine.ReloadBestStage1Hook`).

    ``stop_epoch`` is ``max_epochs - no_aug_epoch``, as in every official
    config. The configs' ``train_pipeline`` stays the base's; the training
    dataloader's pipeline is the policy's first stage.

    Args:
        base (dict): The RT-DETR or RT-DETRv2 config, the ``_base_`` of the
            calling config.
        max_epochs (int): DEIM's ``epoches``: the training epochs.
        no_aug_epoch (int): DEIM's ``no_aug_epoch``.
        start_epoch (int): The first epoch of mosaic and mixup. Defaults
            to 4, DEIM's.
        flat_epoch (int, optional): DEIM's ``flat_epoch``, also the end of
            the mosaic and mixup. Defaults to None:
            ``start_epoch + max_epochs // 2``, DEIM's rule.
        lr (float): The base learning rate. Defaults to 2e-4, DEIM's.
        backbone_lr_mult (float, optional): The backbone's learning rate
            multiplier; None keeps the base's. Defaults to None.
        warmup_iter (int): The quadratic warm-up's iterations. Defaults to
            2000, DEIM's.
        mosaic_size (int): The mosaic's ``output_size``. Defaults to 320,
            DEIM's for 640 x 640 inputs.
        multi_scale (bool): Multi-scale batches until ``stop_epoch``;
            False trains at one size (DEIM-D-FINE-N's
            ``base_size_repeat: ~``). Defaults to True.
        lr_gamma (float): DEIM's ``lr_gamma``: the minimum lr over the
            base lr. Defaults to 0.5, DEIM's.
        backbone_norm_lr_mult (float, optional): The lr multiplier of the
            backbone's norms, DEIM's for RT-DETRv2, S and M (their group
            ``'^(?=.*backbone)(?!.*norm).*$'`` or ``(?!.*bn)``); None keeps
            the base's (DEIM-D-FINE-N, L and X, whose ``(?!.*norm|bn)``
            also holds the HGNetV2's ``bn``). Defaults to 1.0.
        reload_best_stage1 (bool): Go back to the best state before
            ``stop_epoch`` (``ReloadBestStage1Hook``, in place of a D-FINE
            base's); it needs a validation before ``stop_epoch``. Defaults
            to True.

    Returns:
        tuple: What the config sets as ``model``, ``optim_wrapper``,
        ``param_scheduler``, ``custom_hooks`` (the base's without its
        pipeline switch, and the policy's) and ``train_dataloader``.
    """
    if flat_epoch is None:
        flat_epoch = start_epoch + max_epochs // 2
    stop_epoch = max_epochs - no_aug_epoch
    if not 0 <= start_epoch < flat_epoch < stop_epoch <= max_epochs:
        raise ValueError(
            f'DEIM needs 0 <= start_epoch < flat_epoch < max_epochs - '
            f'no_aug_epoch <= max_epochs, got start_epoch={start_epoch}, '
            f'flat_epoch={flat_epoch}, max_epochs={max_epochs}, '
            f'no_aug_epoch={no_aug_epoch}: give more epochs, or a smaller '
            f'no_aug_epoch or flat_epoch (by default start_epoch + '
            f'max_epochs // 2)')
    if base.model.get('type') == 'DFINE':
        model = dict(
            decoder=dict(layer_cfg=dict(act_cfg=SILU),
                         query_pos_act_cfg=SILU,
                         pre_bbox_act_cfg=SILU,
                         lqe_cfg=dict(act_cfg=SILU)))
        optim_wrapper = dict(paramwise_cfg=dict())
        if backbone_lr_mult is not None:
            optim_wrapper['paramwise_cfg']['custom_keys'] = {
                'backbone': dict(lr_mult=backbone_lr_mult)
            }
    else:
        # The switch of v2's recipe is replaced by the policy's.
        model, optim_wrapper, _ = rtdetrv2_changes(
            base, stop_epoch, multi_scale=False,
            backbone_lr_mult=backbone_lr_mult)
        model['decoder']['layer_cfg']['act_cfg'] = SILU
        model['decoder'].update(
            query_pos_method='as_reg', query_pos_act_cfg=SILU)

    # DEIM mixes, then resizes.
    augments = [
        dict(type='DEIMBatchMixUp', prob=0.5,
             epochs=[start_epoch, flat_epoch])
    ]
    if multi_scale:
        # DEIM's collate function takes no `scales`: a base trained at one
        # size (RT-DETRv2-S) still gets RT-DETR's sizes.
        resizes = [
            augment
            for augment in base.model.data_preprocessor.batch_augments or []
            if augment['type'] == 'BatchRandomChoiceResize'
        ] or [dict(type='BatchRandomChoiceResize')]
        augments += [dict(r, stop_epoch=stop_epoch) for r in resizes]
    model['data_preprocessor'] = dict(batch_augments=augments)
    model['bbox_head'] = dict(
        loss_cls=dict(MAL, _delete_=True),
        reg_act_cfg=SILU,
        box_matching='union')
    if base.model.backbone.type in ('PResNet', 'HGNetV2'):
        model['backbone'] = dict(
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False)
    optim_wrapper['optimizer'] = dict(lr=lr)
    if backbone_norm_lr_mult is not None:
        keys = optim_wrapper['paramwise_cfg'].setdefault('custom_keys', {})
        keys.setdefault('backbone', {})['norm_lr_mult'] = \
            backbone_norm_lr_mult

    param_scheduler = [
        dict(type='FlatCosineLR', warmup_iter=warmup_iter,
             flat_epoch=flat_epoch, no_aug_epoch=no_aug_epoch,
             lr_gamma=lr_gamma, begin=0, end=max_epochs,
             convert_to_iter_based=True)
    ]

    pipeline = list(base.train_pipeline)
    types = [t['type'] for t in pipeline]
    if 'LoadAnnotations' not in types:
        raise ValueError(f'the training pipeline needs LoadAnnotations '
                         f'before the mosaic (add dict(type='
                         f"'LoadAnnotations', with_bbox=True)), got {types}")
    pipeline.insert(
        types.index('LoadAnnotations') + 1,
        dict(MOSAIC, output_size=mosaic_size))
    first, switches = deim_policy(
        pipeline, epochs=(start_epoch, flat_epoch, stop_epoch),
        mosaic_prob=0.5)
    hooks = [
        hook for hook in base.custom_hooks
        if hook['type'] not in STOP_EPOCH_HOOKS
    ] + switches
    if reload_best_stage1:
        hooks.append(
            dict(type='ReloadBestStage1Hook', stop_epoch=stop_epoch))
    return (model, optim_wrapper, param_scheduler, hooks,
            dict(dataset=dict(pipeline=first)))
