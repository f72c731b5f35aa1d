# Copyright (c) OpenMMLab. All rights reserved.
"""Helpers of the bad-input tests, which check that bad input ends in one
clear error naming the problem and the fix and that nothing a user had is
lost. They run for real on the ``tiny`` detector of ``tests/conftest.py``:
configs built by the registry, checkpoints loaded by mmengine's loader,
datasets on files on disk, the tools as subprocesses."""
import hashlib
import subprocess
import sys
from pathlib import Path

from mmriformer.apis import build_model


def run(*args, cwd, timeout=600):
    """Run a command with this interpreter; return the finished process."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(cfg, **overrides):
    return build_model(cfg, {f'model.{k}': v for k, v in overrides.items()})
