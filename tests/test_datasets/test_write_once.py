# Copyright (c) OpenMMLab. All rights reserved.
"""write_once with real files, and with real processes racing for a split
or dying half-way."""
import json
import multiprocessing
import os
import os.path as osp
import signal
import time

import pytest

from mmriformer.datasets.write_once import write_once
from mmriformer.testing import started_together

NUM_FILES = 5
PAYLOAD = 'x' * 10000
SETTINGS = dict(seed=0, size=[3, 4])
# fork: the children need no re-import of torch and mmdet.
CONTEXT = multiprocessing.get_context('fork')


def record_of(folder):
    with open(osp.join(folder, 'record.json')) as f:
        return json.load(f)


def split_files(folder):
    return [osp.join(folder, f'{i}.txt') for i in range(NUM_FILES)]


def write_split(folder, settings=SETTINGS, pause=0., half_done=None):
    """write_once on ``folder`` whose writer logs every call in
    ``calls.log`` and writes NUM_FILES files, each after ``pause`` seconds;
    given ``half_done``, it sets that event half-way and hangs there."""

    def write(previous):
        with open(osp.join(folder, 'calls.log'), 'a') as f:
            f.write(json.dumps(previous) + '\n')
        for index, path in enumerate(split_files(folder)):
            if half_done is not None and index == NUM_FILES // 2:
                half_done.set()
                time.sleep(600)
            time.sleep(pause)
            with open(path, 'w') as f:
                f.write(PAYLOAD)
        return dict(settings)

    return write_once(
        osp.join(folder, 'record.json'),
        settings,
        write,
        lock_file=osp.join(folder, '.lock'),
        fix='Use another folder.')


def calls(folder):
    with open(osp.join(folder, 'calls.log')) as f:
        return [json.loads(line) for line in f]


def test_writes_once_then_reuses(tmp_path):
    assert write_split(tmp_path)
    assert record_of(tmp_path) == SETTINGS
    # Tuples are compared as the record reads them back, as lists.
    assert not write_split(tmp_path, dict(seed=0, size=(3, 4)))
    assert calls(tmp_path) == [None]


def test_other_settings_rewrite_and_see_the_old_ones(tmp_path):
    write_split(tmp_path)
    assert write_split(tmp_path, dict(seed=1, size=[3, 4]))
    assert record_of(tmp_path) == dict(seed=1, size=[3, 4])
    assert calls(tmp_path) == [None, SETTINGS]


def test_settings_inside_the_record_and_incomplete_files(tmp_path):
    record_file = tmp_path / 'split.json'
    files = []

    def write(previous):
        files.append(tmp_path / f'{len(files)}.txt')
        files[-1].write_text('done')
        return dict(info=dict(generator=SETTINGS), files=[str(files[-1])])

    def split(is_complete=None):
        return write_once(
            str(record_file),
            SETTINGS,
            write,
            lock_file=str(tmp_path / '.lock'),
            settings_key=('info', 'generator'),
            is_complete=is_complete)

    def all_there(record):
        return all(osp.isfile(path) for path in record['files'])

    assert split(all_there) and not split(all_there)
    files[-1].unlink()
    assert split(all_there)
    assert len(files) == 2
    assert json.loads(record_file.read_text())['files'] == [str(files[1])]


@pytest.mark.parametrize('content, settings_key', [
    ('{"images": []}', ('info', 'generator')),
    ('{"info": {"generator": 1}}', ('info', 'generator')),
    ('not json', ()),
    ('[1]', ()),
])
def test_foreign_record_is_left_alone(tmp_path, content, settings_key):
    record_file = tmp_path / 'record.json'
    record_file.write_text(content)
    with pytest.raises(ValueError, match='not written by.*Use another'):
        write_once(
            str(record_file),
            SETTINGS,
            lambda previous: pytest.fail('wrote over a foreign record'),
            lock_file=str(tmp_path / '.lock'),
            settings_key=settings_key,
            fix='Use another folder.')
    assert record_file.read_text() == content


def test_unwritable_folder_names_it_and_the_fix(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    with pytest.raises(OSError, match='Use another folder') as error:
        write_split(blocker / 'split')
    assert f'"{blocker / "split"}"' in str(error.value)


def test_failed_write_leaves_no_record(tmp_path):
    write_split(tmp_path)

    def fail(previous):
        raise RuntimeError('disk full')

    with pytest.raises(RuntimeError, match='disk full'):
        write_once(
            str(tmp_path / 'record.json'),
            dict(seed=2),
            fail,
            lock_file=str(tmp_path / '.lock'))
    # The old record went before the files changed; no temporary is left.
    assert not any(name.startswith('record') for name in os.listdir(tmp_path))
    assert write_split(tmp_path)


def test_concurrent_processes_write_once(tmp_path):
    """Exactly one of several processes writes; a reader never sees a
    record before all the files it describes are complete."""
    racing = started_together(write_split, (tmp_path, SETTINGS, 0.05), 4)
    with racing as workers:
        while any(worker.is_alive() for worker in workers):
            if osp.exists(tmp_path / 'record.json'):
                assert record_of(tmp_path) == SETTINGS
                for path in split_files(tmp_path):
                    with open(path) as f:
                        assert f.read() == PAYLOAD
            time.sleep(0.005)
    assert calls(tmp_path) == [None]
    assert record_of(tmp_path) == SETTINGS
    assert not [name for name in os.listdir(tmp_path) if '.tmp' in name]


def test_killed_writer_leaves_no_record(tmp_path):
    """A writer killed half-way leaves no record; its lock dies with it and
    the next caller writes the split whole."""
    half_done = CONTEXT.Event()
    writer = CONTEXT.Process(
        target=write_split, args=(tmp_path, SETTINGS, 0., half_done))
    writer.start()
    assert half_done.wait(timeout=60)
    assert not osp.exists(tmp_path / 'record.json')
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(timeout=60)
    assert writer.exitcode == -signal.SIGKILL
    assert write_split(tmp_path)
    assert calls(tmp_path) == [None, None]
    for path in split_files(tmp_path):
        with open(path) as f:
            assert f.read() == PAYLOAD
