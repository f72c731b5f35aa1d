# Copyright (c) OpenMMLab. All rights reserved.
import pytest

from mmriformer.utils.riformer_backbone import (RIFORMER_CHECKPOINTS,
                                                riformer_backbone)


@pytest.mark.parametrize('arch', sorted(RIFORMER_CHECKPOINTS))
def test_checkpoint_is_of_its_arch(arch):
    backbone = riformer_backbone(arch)
    assert backbone['arch'] == arch
    assert backbone['init_cfg']['checkpoint'].rsplit('/', 1)[-1].startswith(
        f'riformer-{arch}_')


def test_unknown_arch_names_the_known_ones():
    with pytest.raises(ValueError, match="'s48'.*s12, s24, s36, m36, m48"):
        riformer_backbone('s48')
