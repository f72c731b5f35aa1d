# Copyright (c) OpenMMLab. All rights reserved.
"""mmdet's tools/train.py (same arguments), also distributed on CPU-only hosts.

See :mod:`mmriformer.utils.launch`.
"""
import sys

from mmriformer.utils.launch import run_mmdet_tool

if __name__ == '__main__':
    run_mmdet_tool('train.py', sys.argv[1:])
