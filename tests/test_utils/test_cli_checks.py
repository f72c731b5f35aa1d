# Copyright (c) OpenMMLab. All rights reserved.
import pytest

from mmriformer.utils.cli_checks import check_output_file


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
