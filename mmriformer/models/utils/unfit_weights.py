# Copyright (c) OpenMMLab. All rights reserved.
"""A detector that knows whether its loaded weights fit.

mmengine's Runner loads ``load_from`` and ``mim test``'s checkpoint
non-strictly, so weights that do not fit (another arch, another
``num_classes``, the other form) only draw a warning and leave layers at
their initial values. That is how fine-tuning starts (e.g. a head for other
classes), but predicting with such a model gives meaningless results.
"""
import logging
from typing import Mapping, Optional, Sequence, Tuple

from mmengine.logging import print_log
from torch import Tensor, nn
from torch.nn.modules.module import _IncompatibleKeys

from ...utils.pretrained import shape_problems
from .reparameterize import unknown_keys_of_leaves

# The head's first classifier, whose rows give the number of classes.
CLASS_WEIGHT_KEY = 'bbox_head.cls_branches.0.weight'


def describe_unfit(model: nn.Module, state: Mapping[str, Tensor],
                   missing: Sequence[str],
                   unexpected: Sequence[str]) -> Optional[Tuple[str, str]]:
    """What of a load of ``state`` into ``model`` did not fit, and the fix.

    BatchNorm counters (``num_batches_tracked``) are not counted.

    Args:
        model (nn.Module): The model, after the load.
        state (Mapping[str, Tensor]): The weights loaded, in the model's
            keys.
        missing (Sequence[str]): Keys of the model the load left initial,
            besides those of other shapes.
        unexpected (Sequence[str]): Keys of ``state`` the model lacks.

    Returns:
        tuple[str, str] | None: None where everything fits. Else the
        problems (e.g. ``'17 of other shapes (first: ...); 8 missing
        (first: ...)'``) and the fix, a clause starting with a verb: the
        config the checkpoint was trained with (and its number of classes);
        for train-form weights in a deploy-form model, that config and a
        fold after loading, or a fold of the checkpoint first.
    """
    own = model.state_dict()
    shapes = shape_problems(state, own)
    missing = [k for k in missing if 'num_batches_tracked' not in k]
    unexpected = [k for k in unexpected if 'num_batches_tracked' not in k]
    if not (shapes or missing or unexpected):
        return None
    parts = [f'{len(shapes)} of other shapes (first: {shapes[0]})'] \
        if shapes else []
    parts += [f'{len(keys)} {what} (first: {", ".join(keys[:3])})'
              for what, keys in (('missing', missing),
                                 ('unexpected', unexpected)) if keys]
    folded = bool(unknown_keys_of_leaves(model, unexpected, deploy=True))
    if folded:
        parts.append('train-form weights for a deploy-form model')
    fix = ('use the train-form config of the checkpoint' if folded else
           'use the config the checkpoint was trained with')
    classes = state[CLASS_WEIGHT_KEY].shape[0] if CLASS_WEIGHT_KEY in state \
        and CLASS_WEIGHT_KEY in own else None
    if classes is not None and classes != own[CLASS_WEIGHT_KEY].shape[0]:
        fix += (f' (it predicts {classes} classes: set '
                f'model.bbox_head.num_classes={classes})')
    elif not folded:
        fix += ' (the Runner saves a copy in its work_dir)'
    if folded:
        fix += (' and fold the model after loading (tools/infer.py '
                '--deploy), or convert it to the deploy form first with '
                'tools/model_converters/reparameterize.py')
    return '; '.join(parts), fix


def note_unfit_weights_hook(module: nn.Module,
                            incompatible: _IncompatibleKeys) -> None:
    """Load-state-dict post-hook: see
    :meth:`UnfitWeightsMixin.note_unfit_weights`."""
    module.note_unfit_weights(incompatible)


class UnfitWeightsMixin:
    """Refuse deploy weights in a train-form model; after a load that left
    layers initial, refuse to predict until a training step has run.

    For an mmdet detector (an ``nn.Module`` with ``predict`` and ``loss``):
    register :func:`note_unfit_weights_hook` in ``__init__`` with
    ``register_load_state_dict_post_hook``, call
    :meth:`check_weights_loaded` in ``predict`` and :meth:`mark_trained` in
    ``loss``.
    """
    # What the last load left unloaded, as a message; None: nothing.
    unfit_weights: Optional[str] = None
    _load_prefix = ''
    # The weights of the load in progress, in this model's keys.
    _load_state: Mapping[str, Tensor] = {}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Refuse deploy-form weights in a train-form model; keep the
        weights for :meth:`note_unfit_weights`.

        Raises:
            ValueError: The checkpoint is in deploy form and this model (or
                part of it) in train form, which cannot unfold it.
        """
        state = {k[len(prefix):]: v for k, v in state_dict.items()
                 if k.startswith(prefix)}
        deploy_keys = unknown_keys_of_leaves(self, list(state), deploy=False)
        if deploy_keys:
            raise ValueError(
                f'The checkpoint is in deploy form (it holds '
                f'{deploy_keys[0]}, which the train-form model of this '
                f'config lacks), and deploy weights cannot be unfolded; '
                f'load it into the deploy form: use the deploy config (e.g. '
                f'configs/demo/rtdetr_riformer_s12_shapes_deploy.py) or add '
                f'--cfg-options model.backbone.deploy=True '
                f'model.neck.deploy=True.')
        self._load_prefix = prefix
        self._load_state = state
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def note_unfit_weights(self, incompatible: _IncompatibleKeys) -> None:
        """After a load: note and log what did not fit
        (:func:`describe_unfit`).

        Until a training step has run, :meth:`check_weights_loaded` then
        refuses to predict.

        Args:
            incompatible (_IncompatibleKeys): Missing and unexpected keys of
                the load, with the prefix of this model.
        """
        prefix = self._load_prefix

        def own(keys):
            return [k[len(prefix):] for k in keys if k.startswith(prefix)]

        unfit = describe_unfit(self, self._load_state,
                               own(incompatible.missing_keys),
                               own(incompatible.unexpected_keys))
        self._load_state = {}
        if unfit is None:
            self.unfit_weights = None
            return
        problems, fix = unfit
        self.unfit_weights = (
            f'weights of the checkpoint do not fit the model ({problems}), '
            f'so layers kept their initial values; to test or run it, {fix}')
        print_log(f'{type(self).__name__}: {self.unfit_weights}. Training '
                  f'starts those layers afresh (as fine-tuning on other '
                  f'classes wants); the model refuses to predict before it '
                  f'has trained.', logger='current', level=logging.WARNING)

    def check_weights_loaded(self) -> None:
        """Raise if the last load left layers at their initial values and
        no training step has run since.

        Raises:
            ValueError: The loaded checkpoint did not fit the model.
        """
        if self.unfit_weights is not None:
            raise ValueError(f'{type(self).__name__} cannot predict: '
                             f'{self.unfit_weights}.')

    def mark_trained(self) -> None:
        """Training takes over the layers a partial load left initial."""
        self.unfit_weights = None
