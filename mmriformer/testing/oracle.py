# Copyright (c) OpenMMLab. All rights reserved.
"""Reference implementations run in a separate, cached virtual environment.

HF transformers cannot live in our environment (it breaks the mmdet and
mmpretrain imports), so the oracle runs in a venv of its own: created once
with ``python -m venv`` under ``~/.cache/mmriformer/oracle-venv-<key>``
(``<key>`` hashes the pinned requirements and the Python version, so a new
pin builds a new venv), and reused afterwards. Scripts run there by
subprocess and exchange files through a folder.

The cache folder can be moved with the environment variable
``MMRIFORMER_ORACLE_CACHE``. Building needs the package index that pip is
configured with (about a minute with a local torch wheel); without it,
:class:`OracleUnavailable` says so. Tests must fail, not skip, on it.
"""
import hashlib
import os
import os.path as osp
import shutil
import subprocess
import sys
from typing import Any, Dict, Sequence

import torch
from filelock import FileLock

# One version of everything, so the oracle does not move under the tests.
# torch 2.13.0 is the CPU wheel where pip's find-links have it.
ORACLE_REQUIREMENTS = (
    'torch==2.13.0',
    'transformers==5.18.0',
    'huggingface_hub==2.4.0',
    'safetensors==0.8.0',
    'tokenizers==0.23.3',
    'numpy==2.4.6',
    'pillow==11.3.0',
    # HF's RT-DETR Hungarian matcher (the loss oracle) solves with scipy.
    'scipy==1.17.1',
    # HF's RT-DETR in OpenVINO, the peer of our OpenVINO backends
    # (tools/analysis_tools/hf_rtdetr_benchmark.py), int8 through NNCF.
    'openvino==2026.4.1',
    'nncf==3.4.0',
)
CACHE_VARIABLE = 'MMRIFORMER_ORACLE_CACHE'
HF_RTDETR_SCRIPT = osp.join(osp.dirname(__file__), 'hf_rtdetr_oracle.py')
HF_HGNETV2_SCRIPT = osp.join(osp.dirname(__file__), 'hf_hgnetv2_oracle.py')
HF_DFINE_SCRIPT = osp.join(osp.dirname(__file__), 'hf_dfine_oracle.py')
_COMPLETE = '.complete'


class OracleUnavailable(RuntimeError):
    """The oracle venv could not be built or its script failed."""


def oracle_venv_dir(requirements: Sequence[str] = ORACLE_REQUIREMENTS) -> str:
    """Where the venv of these requirements lives (built or not)."""
    key = hashlib.sha256(
        '\n'.join([f'python{sys.version_info[0]}.{sys.version_info[1]}'] +
                  list(requirements)).encode()).hexdigest()[:12]
    root = os.environ.get(CACHE_VARIABLE) or osp.join(osp.expanduser('~'),
                                                      '.cache', 'mmriformer')
    return osp.join(root, f'oracle-venv-{key}')


def _python(venv: str) -> str:
    return osp.join(venv, 'bin', 'python')


def _tail(text: str, lines: int = 25) -> str:
    return '\n'.join(text.strip().splitlines()[-lines:])


def ensure_oracle_venv(requirements: Sequence[str] = ORACLE_REQUIREMENTS,
                       timeout: float = 1800.) -> str:
    """Build the oracle venv once; later calls return at once.

    Concurrent callers (e.g. pytest-xdist workers) wait on a file lock
    instead of building twice. A build that did not finish is removed and
    redone: the venv counts only once its marker file is written.

    Args:
        requirements (Sequence[str]): Pinned pip requirements.
        timeout (float): Seconds allowed for pip. Defaults to 1800.

    Returns:
        str: The venv's Python executable.

    Raises:
        OracleUnavailable: venv or pip failed (e.g. no package index
            reachable), with pip's last lines of output.
    """
    venv = oracle_venv_dir(requirements)
    os.makedirs(osp.dirname(venv), exist_ok=True)
    with FileLock(venv + '.lock'):
        if osp.isfile(osp.join(venv, _COMPLETE)):
            return _python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        log = venv + '.log'
        steps = [
            [sys.executable, '-m', 'venv', venv],
            [
                _python(venv), '-m', 'pip', 'install', '--no-input',
                '--disable-pip-version-check', *requirements
            ],
        ]
        with open(log, 'w') as out:
            for step in steps:
                out.write(f'$ {" ".join(step)}\n')
                out.flush()
                try:
                    proc = subprocess.run(step,
                                          stdout=out,
                                          stderr=subprocess.STDOUT,
                                          timeout=timeout,
                                          stdin=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    proc = None
                if proc is None or proc.returncode != 0:
                    out.close()
                    with open(log) as f:
                        tail = _tail(f.read())
                    shutil.rmtree(venv, ignore_errors=True)
                    raise OracleUnavailable(
                        f'Could not build the oracle venv {venv} '
                        f'({"timed out" if proc is None else "failed"}: '
                        f'{" ".join(step[:4])} ...). It needs the package '
                        f'index pip is configured with (PyPI) to install '
                        f'{", ".join(requirements)}. Full log: {log}. Last '
                        f'lines:\n{tail}')
        with open(osp.join(venv, _COMPLETE), 'w') as f:
            f.write('\n'.join(requirements) + '\n')
    return _python(venv)


def run_in_oracle(script: str,
                  args: Sequence[str],
                  cwd: str,
                  timeout: float = 1200.) -> str:
    """Run a script with the oracle venv's Python, offline.

    Args:
        script (str): Path of the script.
        args (Sequence[str]): Its arguments.
        cwd (str): Working folder.
        timeout (float): Seconds allowed. Defaults to 1200.

    Returns:
        str: The script's standard output.

    Raises:
        OracleUnavailable: The venv could not be built or the script
            failed (with its last lines of output).
    """
    python = ensure_oracle_venv()
    env = {k: v for k, v in os.environ.items() if not k.startswith('PYTHON')}
    # Nothing may come from the hub: models are built from configs.
    env.update(HF_HUB_OFFLINE='1',
               TRANSFORMERS_OFFLINE='1',
               HF_HUB_DISABLE_TELEMETRY='1',
               TOKENIZERS_PARALLELISM='false')
    try:
        proc = subprocess.run([python, script, *args],
                              cwd=cwd,
                              env=env,
                              capture_output=True,
                              text=True,
                              timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise OracleUnavailable(
            f'{osp.basename(script)} did not finish within {timeout} s in '
            f'the oracle venv.') from error
    if proc.returncode != 0:
        raise OracleUnavailable(
            f'{osp.basename(script)} failed in the oracle venv (exit '
            f'{proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}')
    return proc.stdout


def run_oracle_script(script: str, inputs: Dict[str, Any],
                      folder: str) -> Dict[str, Any]:
    """Run a script of the form ``script IN.pt OUT.pt`` on ``inputs``.

    ``inputs`` is saved to ``folder/inputs.pt``, the script writes
    ``folder/outputs.pt`` (both with ``torch.save``), which is loaded back.

    Args:
        script (str): Path of the script.
        inputs (dict): What the script reads.
        folder (str): Folder for the exchanged files, also the working
            folder.

    Returns:
        dict: What the script wrote.

    Raises:
        OracleUnavailable: As :func:`run_in_oracle`.
    """
    in_path = osp.join(folder, 'inputs.pt')
    out_path = osp.join(folder, 'outputs.pt')
    torch.save(inputs, in_path)
    run_in_oracle(script, [in_path, out_path], cwd=folder)
    return torch.load(out_path)


def run_folder_oracle(script: str, out_dir: str,
                      requests: Sequence[str]) -> str:
    """Run a script of the form ``script OUT_DIR REQUEST ...``.

    Args:
        script (str): Path of the script.
        out_dir (str): Folder for the exchanged files, also the working
            folder.
        requests (Sequence[str]): What to build, in the script's words.

    Returns:
        str: ``out_dir``.

    Raises:
        OracleUnavailable: As :func:`run_in_oracle`.
    """
    os.makedirs(out_dir, exist_ok=True)
    run_in_oracle(script, [out_dir, *requests], cwd=out_dir)
    return out_dir


def run_hf_rtdetr_oracle(out_dir: str, variants: Sequence[str]) -> str:
    """Build, save and run HF RT-DETRs of the given layouts in the oracle.

    See :mod:`mmriformer.testing.hf_rtdetr_oracle` for what lands in
    ``out_dir``.

    Args:
        out_dir (str): Folder for the exchanged files.
        variants (Sequence[str]): Layouts, e.g. ``['r18vd', 'r50vd']``.

    Returns:
        str: ``out_dir``.
    """
    return run_folder_oracle(HF_RTDETR_SCRIPT, out_dir, variants)


def run_hf_hgnetv2_oracle(out_dir: str, requests: Sequence[str]) -> str:
    """Build, save and run HF HGNetV2 backbones in the oracle.

    See :mod:`mmriformer.testing.hf_hgnetv2_oracle` for what lands in
    ``out_dir``.

    Args:
        out_dir (str): Folder for the exchanged files.
        requests (Sequence[str]): Archs, each optionally with ``':dfine'``
            to save an HF D-FINE around it too, e.g. ``['B0:dfine', 'B4']``.

    Returns:
        str: ``out_dir``.
    """
    return run_folder_oracle(HF_HGNETV2_SCRIPT, out_dir, requests)


def run_hf_dfine_oracle(out_dir: str, sizes: Sequence[str]) -> str:
    """Build, save and run whole HF D-FINEs of the given sizes in the
    oracle.

    See :mod:`mmriformer.testing.hf_dfine_oracle` for what lands in
    ``out_dir``.

    Args:
        out_dir (str): Folder for the exchanged files.
        sizes (Sequence[str]): Official sizes, e.g. ``['n', 's']``.

    Returns:
        str: ``out_dir``.
    """
    return run_folder_oracle(HF_DFINE_SCRIPT, out_dir, sizes)
