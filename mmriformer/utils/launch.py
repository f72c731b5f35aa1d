# Copyright (c) OpenMMLab. All rights reserved.
"""Run mmdet's own train/test scripts, adding CPU-only distributed runs.

With a distributed launcher, mmengine 0.10.7 calls ``torch.cuda.set_device``
unconditionally and mmdet's runtime asks for NCCL, so a host without CUDA
fails before training starts. On such hosts :func:`run_mmdet_tool` makes
``set_device`` a no-op and adds config options for gloo and DDP on CPU.
SyncBN (``sync_bn`` in the RT-DETR configs, as officially) only runs on
CUDA, so there each process normalises its own batch, and it says so.
"""
import os.path as osp
import runpy
import sys
from typing import List

import torch

CPU_DIST_OPTIONS = [
    'env_cfg.dist_cfg.backend=gloo',
    'model_wrapper_cfg.type=MMDistributedDataParallel',
    'model_wrapper_cfg.device_ids=None',
    'sync_bn=None',
]


def launcher_of(argv: List[str]) -> str:
    """The value of ``--launcher`` in ``argv`` ('none' when absent)."""
    for i, arg in enumerate(argv):
        if arg == '--launcher' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--launcher='):
            return arg.split('=', 1)[1]
    return 'none'


def with_cpu_dist_options(argv: List[str]) -> List[str]:
    """Add :data:`CPU_DIST_OPTIONS` to the ``--cfg-options`` of ``argv``."""
    argv = list(argv)
    if '--cfg-options' in argv:
        at = argv.index('--cfg-options') + 1
        return argv[:at] + CPU_DIST_OPTIONS + argv[at:]
    return argv + ['--cfg-options'] + CPU_DIST_OPTIONS


def run_mmdet_tool(script: str, argv: List[str]) -> None:
    """Run ``mmdet/.mim/tools/<script>`` with ``argv`` as its arguments.

    Args:
        script (str): 'train.py' or 'test.py'.
        argv (list[str]): Arguments, as given on the command line.
    """
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', script)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} is missing; reinstall mmdet from its wheel '
            f'(pip install --force-reinstall mmdet==3.3.0).')
    if launcher_of(argv) != 'none' and not torch.cuda.is_available():
        torch.cuda.set_device = lambda device: None
        argv = with_cpu_dist_options(argv)
        print('Distributed on CPU (gloo): BatchNorm stays per process, as '
              'SyncBN needs CUDA (sync_bn=None).', file=sys.stderr)
    sys.argv = [path] + argv
    runpy.run_path(path, run_name='__main__')
