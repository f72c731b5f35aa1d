# Copyright (c) OpenMMLab. All rights reserved.
"""Checkpoints load with weights_only=True and an allow-list scoped to our
loaders; anything that would run code is refused before it runs. Files that
are not checkpoints are named for what they are."""
import io
import os
import pickle
import zipfile
from datetime import datetime

import cv2
import numpy as np
import pytest
import torch
from helpers import build, digest
from mmengine.runner import CheckpointLoader, load_checkpoint

from mmriformer.models import RIFormer
from mmriformer.utils.checkpoint import (TRUSTED_VARIABLE,
                                         CheckpointFileError,
                                         UnsafeCheckpointError,
                                         save_atomically)

TINY_ARCH = dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32])


class MakesDirectory:
    """Unpickling it calls os.mkdir: a stand-in for any code a crafted
    checkpoint would run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path, )


class ReachesAttribute:
    """Unpickling it calls getattr, which HistoryBuffer pickles need, on
    something else."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def weights():
    return RIFormer(arch=TINY_ARCH).state_dict()


def test_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    allowed_before = set(torch.serialization.get_safe_globals())
    torch.save({'state_dict': weights(), 'meta': MakesDirectory(str(marker))},
               path)
    for load in (
            lambda: CheckpointLoader.load_checkpoint(str(path)),
            lambda: load_checkpoint(RIFormer(arch=TINY_ARCH), str(path)),
            lambda: RIFormer(arch=TINY_ARCH, init_cfg=dict(
                type='Pretrained', checkpoint=str(path))).init_weights(),
    ):
        with pytest.raises(UnsafeCheckpointError) as error:
            load()
        message = str(error.value)
        assert str(path) in message and 'mkdir' in message
        assert TRUSTED_VARIABLE in message
        assert not marker.exists()
    torch.save({'meta': ReachesAttribute()}, path)
    with pytest.raises(UnsafeCheckpointError, match='getattr.*tofile'):
        CheckpointLoader.load_checkpoint(str(path))
    # Torch's process-wide allow-list is as it was.
    assert set(torch.serialization.get_safe_globals()) == allowed_before


def test_trusted_file_is_fully_unpickled(tmp_path, monkeypatch):
    """The documented opt-out, and its risk: the file's code runs."""
    marker = tmp_path / 'ran'
    for name in ('listed.pth', 'unlisted.pth'):
        torch.save({'meta': MakesDirectory(str(marker))}, tmp_path / name)
    monkeypatch.setenv(
        TRUSTED_VARIABLE,
        os.pathsep.join(['/elsewhere.pth',
                         str(tmp_path / '.' / 'listed.pth')]))
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'unlisted.pth'))
    assert not marker.exists()
    CheckpointLoader.load_checkpoint(str(tmp_path / 'listed.pth'))
    assert marker.is_dir()


def official_rtdetr_checkpoint():
    """What lyuwenyu/RT-DETR's solver saves: model, EMA with its counters,
    optimizer, MultiStepLR (its milestones are a Counter), scaler, date."""
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [1000])
    return {
        'model': model.state_dict(),
        'ema': {'module': model.state_dict(), 'updates': 7, 'warmups': 2000},
        'optimizer': optimizer.state_dict(),
        'lr_scheduler': scheduler.state_dict(),
        'scaler': torch.amp.GradScaler('cpu').state_dict(),
        'last_epoch': 71,
        'date': datetime.now().isoformat(),
    }


def test_official_rtdetr_checkpoint_loads(tmp_path):
    path = tmp_path / 'rtdetr_r18vd_dec3_6x_coco.pth'
    saved = official_rtdetr_checkpoint()
    torch.save(saved, path)
    loaded = CheckpointLoader.load_checkpoint(str(path))
    assert loaded['lr_scheduler'] == saved['lr_scheduler']
    assert loaded['ema']['updates'] == 7
    torch.testing.assert_close(loaded['ema']['module'], saved['model'])


def test_numpy_1_pickles_load(tmp_path):
    """Checkpoints written under numpy 1 name numpy.core.multiarray (e.g.
    mmpretrain's 2023 RIFormer releases); numpy 2 writes numpy._core."""
    meta = {'best_top1': np.float64(76.9), 'hist': np.arange(3)}
    buffer = io.BytesIO()
    torch.save({'meta': meta}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    if b'numpy._core.multiarray' in data:
        data = data.replace(b'numpy._core.multiarray',
                            b'numpy.core.multiarray')
    assert b'numpy.core.multiarray' in data
    path = tmp_path / 'old.pth'
    path.write_bytes(data)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # torch's default refuses it
    loaded = CheckpointLoader.load_checkpoint(str(path))['meta']
    assert loaded['best_top1'] == pytest.approx(76.9)
    assert np.array_equal(loaded['hist'], np.arange(3))


def not_checkpoints(root, good):
    """(name, path, message) of files that are not usable checkpoints."""
    data = good.read_bytes()
    buffer = io.BytesIO()
    torch.save({'w': torch.ones(3)}, buffer,
               _use_new_zipfile_serialization=False)
    legacy = buffer.getvalue()
    files = {
        'truncated.pth': (data[:len(data) // 2],
                          r'truncated\.pth is truncated or damaged .*save, '
                          r'copy or download it again'),
        'legacy_truncated.pth': (legacy[:len(legacy) - 8],
                                 r'legacy_truncated\.pth is truncated or '
                                 r'damaged'),
        'empty.pth': (b'', r'empty\.pth is empty \(0 bytes\)'),
        'notes.txt': (b'hello, not weights\n',
                      r"notes\.txt is not a PyTorch checkpoint: it is a "
                      r"text file starting with 'hello, not weights'; give "
                      r'the \.pth file that torch\.save or the Runner '
                      r'wrote'),
        'page.pth': (b'<!DOCTYPE html><html>404</html>',
                     r"a text file starting with '<!DOCTYPE html>"),
        'photo.jpg': (cv2.imencode('.jpg', np.zeros((8, 8, 3),
                                                    np.uint8))[1].tobytes(),
                      r'photo\.jpg is not a PyTorch checkpoint: it is a '
                      r'JPEG image'),
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('images/a.txt', 'x')
    files['archive.zip'] = (archive.getvalue(), r'archive\.zip is a zip '
                            r'archive but not a PyTorch checkpoint')
    cases = []
    for name, (content, message) in files.items():
        (root / name).write_bytes(content)
        cases.append((name, root / name, message))
    (root / 'work_dir').mkdir()
    cases.append(('folder', root / 'work_dir', r'work_dir is a folder, not '
                  r'a file; give the \.pth file in it'))
    return cases


def test_files_that_are_not_checkpoints(tiny, tmp_path):
    model = build(tiny['cfg'])
    for name, path, message in not_checkpoints(tmp_path,
                                               tiny['ckpts']['good']):
        before = digest(path) if path.is_file() else None
        # mmengine's load_checkpoint, as the Runner uses it
        with pytest.raises(CheckpointFileError, match=message):
            load_checkpoint(model, str(path), map_location='cpu')
        assert before is None or digest(path) == before, name


def test_save_atomically_keeps_the_old_file_when_refused(tmp_path):
    out = tmp_path / 'out.pth'
    save_atomically({'a': torch.ones(1)}, str(out))
    assert torch.equal(torch.load(out)['a'], torch.ones(1))

    def refuse(tmp):
        assert torch.equal(torch.load(tmp)['a'], torch.zeros(1))
        raise ValueError('refused')

    with pytest.raises(ValueError, match='refused'):
        save_atomically({'a': torch.zeros(1)}, str(out), refuse)
    # The earlier file is intact and no temporary file is left.
    assert torch.equal(torch.load(out)['a'], torch.ones(1))
    assert os.listdir(tmp_path) == ['out.pth']
