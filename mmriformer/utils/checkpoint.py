# Copyright (c) OpenMMLab. All rights reserved.
"""Checkpoint loaders for torch >= 2.6 under mmengine 0.10.7.

torch >= 2.6 loads with ``weights_only=True`` by default and mmengine 0.10.7
passes nothing, so checkpoints that hold a message hub (every checkpoint the
Runner writes, hence resume) or numpy objects fail to load. These loaders
replace mmengine's local and http(s) ones with the same behaviour plus
``weights_only=False``, which is what mmengine's own later fix does. Only load
checkpoints you trust: unpickling can run code.
"""
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.dist import get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint file, trusting its pickled objects."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'Checkpoint {filename} can not be found; check the path given '
            f'to load_from, --resume, init_cfg.checkpoint or the tool.')
    return torch.load(filename, map_location=map_location, weights_only=False)


@CheckpointLoader.register_scheme(
    prefixes=('http://', 'https://'), force=True)
def load_from_http(filename: str, map_location=None):
    """Download (rank 0 first) into torch's hub cache and load."""
    rank, world_size = get_dist_info()

    def load():
        return torch.hub.load_state_dict_from_url(
            filename, map_location=map_location, weights_only=False)

    if rank == 0:
        checkpoint = load()
    if world_size > 1:
        dist.barrier()
        if rank > 0:
            checkpoint = load()
    return checkpoint
