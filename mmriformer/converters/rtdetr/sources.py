# Copyright (c) OpenMMLab. All rights reserved.
"""Reading RT-DETR weights from HF folders, safetensors and ``.pth`` files."""
import json
import os.path as osp
from typing import Dict, Optional, Tuple

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from ...utils.checkpoint import load_from_local

StateDict = Dict[str, Tensor]

# Where lyuwenyu/RT-DETR's solver (and other trainers) keep the weights,
# in the order they are preferred: the EMA weights are the evaluated ones.
WEIGHT_ENTRIES = (('ema', 'module'), ('model', ), ('state_dict', ),
                  ('module', ))


class UnknownLayoutError(ValueError):
    """A file or folder that holds no RT-DETR weights we know."""


def read_safetensors(path: str) -> StateDict:
    """Read a ``.safetensors`` file.

    Args:
        path (str): The file.

    Returns:
        dict[str, Tensor]: Its tensors.

    Raises:
        UnknownLayoutError: The file is not a valid safetensors file.
    """
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise UnknownLayoutError(
            f'{path} is not a readable safetensors file: {error}') from None


def find_weights(ckpt: dict, path: str) -> Tuple[StateDict, str]:
    """The state dict inside a loaded official (or bare) checkpoint.

    Args:
        ckpt (dict): The loaded file.
        path (str): Its name, for the message.

    Returns:
        tuple: The state dict and where it was found, e.g. ``'ema/module'``.

    Raises:
        UnknownLayoutError: No entry holds a state dict.
    """
    for where in WEIGHT_ENTRIES:
        node = ckpt
        for key in where:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node and all(
                isinstance(v, Tensor) for v in node.values()):
            return dict(node), '/'.join(where)
    if ckpt and all(isinstance(v, Tensor) for v in ckpt.values()):
        return dict(ckpt), '(top level)'
    raise UnknownLayoutError(
        f'{path} holds no state dict under "ema"/"module", "model" or '
        f'"state_dict" (top-level keys: {sorted(ckpt)[:10]}); is it an '
        f'RT-DETR checkpoint?')


def read_hf_folder(path: str) -> Tuple[StateDict, dict, str]:
    """Read an HF ``save_pretrained`` folder.

    Args:
        path (str): The folder: ``config.json`` and ``model.safetensors``,
            a sharded ``model.safetensors.index.json`` or
            ``pytorch_model.bin``.

    Returns:
        tuple: The state dict, the config and the weights' file name.

    Raises:
        UnknownLayoutError: A file is missing.
    """
    config_file = osp.join(path, 'config.json')
    if not osp.isfile(config_file):
        raise UnknownLayoutError(
            f'{path} is a folder without config.json; give an HF '
            f'transformers RT-DETR folder (save_pretrained) or an official '
            f'.pth file.')
    with open(config_file) as f:
        config = json.load(f)
    single = osp.join(path, 'model.safetensors')
    index = single + '.index.json'
    binary = osp.join(path, 'pytorch_model.bin')
    if osp.isfile(single):
        return read_safetensors(single), config, 'model.safetensors'
    if osp.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)['weight_map'].values()))
        state = {}
        for shard in shards:
            state.update(read_safetensors(osp.join(path, shard)))
        return state, config, 'model.safetensors (sharded)'
    if osp.isfile(binary):
        return dict(load_from_local(binary, 'cpu')), config, \
            'pytorch_model.bin'
    raise UnknownLayoutError(
        f'{path} has config.json but no model.safetensors, '
        f'model.safetensors.index.json or pytorch_model.bin.')


def load_source(path: str) -> Tuple[StateDict, Optional[dict], str]:
    """Read RT-DETR weights from an HF folder, a safetensors file or a
    ``.pth`` file.

    ``.pth`` files are read by our safe loader: torch's weights-only
    unpickler with the allow-list of :mod:`mmriformer.utils.checkpoint`.

    Args:
        path (str): An HF ``save_pretrained`` folder, a ``.safetensors``
            file, or an official ``.pth``.

    Returns:
        tuple: The flat state dict, the HF config (None for other sources)
        and where the weights were found.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnknownLayoutError: Nothing known is in it.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'{path} does not exist.')
    if osp.isdir(path):
        return read_hf_folder(path)
    if path.endswith('.safetensors'):
        return read_safetensors(path), None, '(safetensors)'
    ckpt = load_from_local(path, 'cpu')
    if not isinstance(ckpt, dict):
        raise UnknownLayoutError(f'{path} holds a {type(ckpt).__name__}, '
                                 f'not a checkpoint dict.')
    state, where = find_weights(ckpt, path)
    return state, None, where


def detect_layout(state: StateDict) -> str:
    """The layout of a state dict, from the key names: RT-DETR's ``'hf'``
    or ``'official'``, D-FINE's (and DEIM-D-FINE's) ``'hf_dfine'`` or
    ``'official_dfine'``, or ``'ours'`` (either detector).

    Raises:
        UnknownLayoutError: No known layout matches.
    """
    keys = list(state)

    def has(*prefixes):
        return any(k.startswith(prefixes) for k in keys)

    if has('model.backbone.model.embedder.stem1.'):
        return 'hf_dfine'
    if has('model.backbone.model.'):
        return 'hf'
    if has('backbone.stem.stem1.', 'module.backbone.stem.stem1.') and has(
            'decoder.dec_score_head.', 'module.decoder.dec_score_head.'):
        return 'official_dfine'
    if has('backbone.res_layers.') and has('decoder.dec_score_head.'):
        return 'official'
    if has('backbone.layer1.', 'backbone.stem.stem1.') and has(
            'bbox_head.cls_branches.'):
        return 'ours'
    raise UnknownLayoutError(
        f'Unknown layout: the keys (e.g. {keys[:3]}) are none of HF '
        f"transformers' RT-DETR with a ResNet-vd backbone "
        f"('model.backbone.model.*') or D-FINE "
        f"('model.backbone.model.embedder.stem1.*'), lyuwenyu/RT-DETR's "
        f"PResNet ('backbone.res_layers.*', 'decoder.dec_score_head.*') or "
        f"Peterande/D-FINE's and DEIM's HGNetv2 ('backbone.stem.stem1.*', "
        f"'decoder.dec_score_head.*').")
