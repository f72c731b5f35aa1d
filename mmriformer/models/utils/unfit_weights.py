# Copyright (c) OpenMMLab. All rights reserved.
"""A detector that knows whether its loaded weights fit.

mmengine's Runner loads ``load_from`` and ``mim test``'s checkpoint
non-strictly, so weights that do not fit (another arch, another
``num_classes``, the other form) only draw a warning and leave layers at
their initial values. That is how fine-tuning starts (e.g. a head for other
classes), but predicting with such a model gives meaningless results.
"""
import logging
from typing import List, Optional, Tuple

from mmengine.logging import print_log
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from .reparam import unknown_keys_of_leaves


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
    # The head's first classifier, whose rows give the number of classes.
    class_weight_key = 'bbox_head.cls_branches.0.weight'
    # What the last load left unloaded, as a message; None: nothing.
    unfit_weights: Optional[str] = None
    _load_prefix = ''
    _load_shape_problems: List[str] = []
    _load_class_counts: Optional[Tuple[int, int]] = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Refuse deploy-form weights in a train-form model; note weights of
        other shapes for :meth:`note_unfit_weights`.

        Raises:
            ValueError: The checkpoint is in deploy form and this model (or
                part of it) in train form, which cannot unfold it.
        """
        keys = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
        deploy_keys = unknown_keys_of_leaves(self, keys, deploy=False)
        if deploy_keys:
            raise ValueError(
                f'The checkpoint is in deploy form (it holds '
                f'{deploy_keys[0]}, which the train-form model of this '
                f'config lacks), and deploy weights cannot be unfolded; '
                f'load it into the deploy form: use the deploy config (e.g. '
                f'configs/demo/rtdetr_riformer_s12_shapes_deploy.py) or add '
                f'--cfg-options model.backbone.deploy=True '
                f'model.neck.deploy=True.')
        own = self.state_dict()
        self._load_prefix = prefix
        self._load_shape_problems = [
            f'{k}: {tuple(state_dict[prefix + k].shape)} in the checkpoint, '
            f'{tuple(own[k].shape)} in the model' for k in keys
            if k in own and hasattr(state_dict[prefix + k], 'shape')
            and state_dict[prefix + k].shape != own[k].shape
        ]
        self._load_class_counts = None
        name = self.class_weight_key
        if name in keys and name in own:
            self._load_class_counts = (state_dict[prefix + name].shape[0],
                                       own[name].shape[0])
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def note_unfit_weights(self, incompatible: _IncompatibleKeys) -> None:
        """After a load: note and log what did not fit.

        Until a training step has run, :meth:`check_weights_loaded` then
        refuses to predict.

        Args:
            incompatible (_IncompatibleKeys): Missing and unexpected keys of
                the load, with the prefix of this model.
        """
        prefix = self._load_prefix

        def own(keys):
            return [k[len(prefix):] for k in keys if k.startswith(prefix)
                    and 'num_batches_tracked' not in k]

        missing = own(incompatible.missing_keys)
        unexpected = own(incompatible.unexpected_keys)
        shapes = self._load_shape_problems
        if not (missing or unexpected or shapes):
            self.unfit_weights = None
            return
        parts = [f'{len(items)} {what} (first: {items[0]})'
                 for what, items in (('of other shapes', shapes),
                                     ('missing', missing),
                                     ('unexpected', unexpected)) if items]
        hint = 'use the config the checkpoint was trained with'
        counts = self._load_class_counts
        if counts and counts[0] != counts[1]:
            hint += (f' (it predicts {counts[0]} classes: set '
                     f'model.bbox_head.num_classes={counts[0]})')
        if unknown_keys_of_leaves(self, unexpected, deploy=True):
            hint += (', or convert it to the deploy form first with '
                     'tools/model_converters/reparameterize.py')
        self.unfit_weights = (
            f'weights of the checkpoint do not fit the model '
            f'({"; ".join(parts)}), so layers kept their initial values; '
            f'to test or run it, {hint}')
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
