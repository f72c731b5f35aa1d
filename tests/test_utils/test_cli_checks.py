# Copyright (c) OpenMMLab. All rights reserved.
import pytest

from mmriformer.utils.cli_checks import check_output_file, check_output_folder


def test_check_output_file(tmp_path):
    new = tmp_path / 'new.onnx'
    check_output_file(str(new))
    assert not new.exists()
    old = tmp_path / 'old.onnx'
    old.write_text('kept')
    with pytest.raises(ValueError, match='exists and is not replaced; give '
                       'another path, or --force to replace it'):
        check_output_file(str(old))
    check_output_file(str(old), force=True)
    assert old.read_text() == 'kept'
    with pytest.raises(ValueError, match='does not exist; create it'):
        check_output_file(str(tmp_path / 'missing' / 'out.onnx'), force=True)
    with pytest.raises(ValueError, match='is a folder'):
        check_output_file(str(tmp_path), force=True)


def test_check_output_folder(tmp_path):
    names = ['out.json', 'vis/a.jpg']
    new = tmp_path / 'new'
    check_output_folder(str(new), names)
    assert not new.exists()
    (tmp_path / 'vis').mkdir()
    (tmp_path / 'vis/a.jpg').write_text('kept')
    (tmp_path / 'other.txt').write_text('not written by the tool')
    with pytest.raises(ValueError, match=(
            r'a\.jpg exists and is not replaced \(1 of the files to write '
            r'exist in .*\); give another folder, or --force to replace '
            r'them')):
        check_output_folder(str(tmp_path), names)
    check_output_folder(str(tmp_path), names, force=True)
    assert (tmp_path / 'vis/a.jpg').read_text() == 'kept'
    with pytest.raises(ValueError, match='does not exist; create it'):
        check_output_folder(str(tmp_path / 'missing' / 'out'), names)
    with pytest.raises(ValueError, match='is a file; give the path of a '
                       'folder'):
        check_output_folder(str(tmp_path / 'other.txt'), names, force=True)
