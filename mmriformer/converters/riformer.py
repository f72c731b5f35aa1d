# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer block weights in the form of the block that takes them.

A block's checkpoint comes in one of three forms: the train form (ours and
mmpretrain's: ``norm1``, ``token_mixer``, layer scales), mmpretrain's
deploy form (``norm_reparam`` with the layer scales and the second norm's
affine not folded in) and our deploy form. A deploy block takes all three;
a train block only the train form, since a fold cannot be undone.
"""
from typing import Dict

from torch import Tensor

from ..models.utils.reparameterize import (fold_affine_into_norm,
                                           fold_norm_affine_into_conv,
                                           scale_conv_output, scale_norm)


# The keys of one RIFormer block in the train form and in mmpretrain's
# deploy form (which keeps the layer scales unfolded).
_SHARED_KEYS = ('layer_scale_1', 'layer_scale_2', 'norm2.weight', 'norm2.bias',
                'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight',
                'mlp.fc2.bias')
TRAIN_FORM_KEYS = ('norm1.weight', 'norm1.bias', 'token_mixer.affine.weight',
                   'token_mixer.affine.bias') + _SHARED_KEYS
MMPRETRAIN_DEPLOY_KEYS = ('norm_reparam.weight',
                          'norm_reparam.bias') + _SHARED_KEYS


def fold_riformer_block_state(state: Dict[str, Tensor],
                              prefix: str = '') -> None:
    """Convert one RIFormer block's weights to our deploy form, in place.

    Accepts the train form (``norm1``, ``token_mixer``, layer scales) and
    mmpretrain's deploy form (``norm_reparam`` without the layer scale folded
    in). Weights already in our deploy form are left as they are.

    Args:
        state (dict[str, Tensor]): A state dict holding the block's weights.
        prefix (str): The block's key prefix, e.g. ``'network.0.1.'``.

    Raises:
        ValueError: The block's weights are incomplete.
    """

    def pop(name):
        return state.pop(prefix + name)

    if prefix + 'token_mixer.affine.weight' in state:
        needed = TRAIN_FORM_KEYS
    elif prefix + 'layer_scale_1' in state:
        needed = MMPRETRAIN_DEPLOY_KEYS
    else:
        return
    missing = [prefix + k for k in needed if prefix + k not in state]
    if missing:
        raise ValueError(
            f'Incomplete RIFormer block weights at {prefix!r}: missing '
            f'{missing}. The checkpoint is truncated or holds another '
            f'model; check the file and the arch.')
    if needed is TRAIN_FORM_KEYS:
        gamma, beta = fold_affine_into_norm(
            pop('norm1.weight'), pop('norm1.bias'),
            pop('token_mixer.affine.weight'), pop('token_mixer.affine.bias'))
        # Statistics buffers (BN's running mean/var) move with the norm.
        for key in [k for k in state if k.startswith(prefix + 'norm1.')]:
            name = key[len(prefix + 'norm1.'):]
            state[prefix + 'norm_reparam.' + name] = state.pop(key)
    else:
        gamma, beta = pop('norm_reparam.weight'), pop('norm_reparam.bias')
    gamma, beta = scale_norm(gamma, beta, pop('layer_scale_1'))
    fc1_w, fc1_b = fold_norm_affine_into_conv(
        pop('mlp.fc1.weight'), pop('mlp.fc1.bias'), pop('norm2.weight'),
        pop('norm2.bias'))
    fc2_w, fc2_b = scale_conv_output(
        pop('mlp.fc2.weight'), pop('mlp.fc2.bias'), pop('layer_scale_2'))
    state.update({
        prefix + 'norm_reparam.weight': gamma,
        prefix + 'norm_reparam.bias': beta,
        prefix + 'mlp.fc1.weight': fc1_w,
        prefix + 'mlp.fc1.bias': fc1_b,
        prefix + 'mlp.fc2.weight': fc2_w,
        prefix + 'mlp.fc2.bias': fc2_b,
    })


def convert_riformer_block_state(state: Dict[str, Tensor], prefix: str,
                                 deploy: bool) -> None:
    """Bring one block's weights to the form of the block, in place.

    Args:
        state (dict[str, Tensor]): A state dict holding the block's weights.
        prefix (str): The block's key prefix, e.g. ``'network.0.1.'``.
        deploy (bool): Whether the block is in deploy form.

    Raises:
        ValueError: Deploy-form weights for a train-form block, or
            incomplete weights.
    """
    if deploy:
        fold_riformer_block_state(state, prefix)
    elif prefix + 'norm_reparam.weight' in state:
        raise ValueError(
            f'The checkpoint holds deploy-form RIFormer weights '
            f'({prefix}norm_reparam.*), which cannot be loaded into a '
            f'train-form block. Build the backbone with deploy=True.')
