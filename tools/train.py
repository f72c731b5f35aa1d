# Copyright (c) OpenMMLab. All rights reserved.
"""mmdet's tools/train.py (same arguments), also distributed on CPU-only hosts.

See :mod:`mmriformer.utils.launch`. A missing config or checkpoint, or a
work_dir holding the config itself, stops first (see
:mod:`mmriformer.utils.cli_checks`).
"""
import sys

from mmriformer.utils.cli_checks import exit_on_problems
from mmriformer.utils.launch import run_mmdet_tool

if __name__ == '__main__':
    exit_on_problems(sys.argv[1:], checkpoint=False)
    run_mmdet_tool('train.py', sys.argv[1:])
