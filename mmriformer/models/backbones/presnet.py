# Copyright (c) OpenMMLab. All rights reserved.
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones import ResNetV1d
from mmdet.models.backbones.resnet import BasicBlock
from mmdet.models.layers import ResLayer
from mmdet.registry import MODELS
from torch import nn

from ...converters.rtdetr.backbone_keys import resnet_vd_to_ours
from ...utils.pretrained import init_pretrained


@MODELS.register_module()
class PResNet(ResNetV1d):
    """RT-DETR's ResNet-vd backbone (``PResNet`` in the official code).

    mmdet's :class:`ResNetV1d` (deep stem, average-pool shortcuts), except
    that the first block of every stage has a projection shortcut, also in
    the first stage, where mmdet's has none for basic blocks (64 channels in
    and out at stride 1). So R18vd and R34vd get a 1x1 conv + BN there
    (``layer1.0.downsample.0`` and ``.1``) and official weights map 1:1;
    with bottleneck blocks (R50vd, R101vd) it is :class:`ResNetV1d`.

    A ``dict(type='Pretrained', checkpoint=..., prefix=...)`` init config
    loads strictly (:func:`~mmriformer.utils.pretrained.init_pretrained`)
    from the official ImageNet files, mmpretrain's ``ResNetV1d`` or mmdet's
    layout, mapped by
    :func:`~mmriformer.converters.rtdetr.backbone_keys.resnet_vd_to_ours`.

    Args:
        **kwargs: Arguments of :class:`ResNetV1d`.
    """

    def make_res_layer(self, **kwargs) -> ResLayer:
        """Build a stage; give its first block a projection shortcut."""
        layer = super().make_res_layer(**kwargs)
        first = layer[0]
        if first.downsample is None and kwargs['block'] is BasicBlock:
            first.downsample = nn.Sequential(
                build_conv_layer(
                    kwargs.get('conv_cfg'),
                    kwargs['inplanes'],
                    kwargs['planes'],
                    kernel_size=1,
                    bias=False),
                build_norm_layer(kwargs['norm_cfg'], kwargs['planes'])[1])
        return layer

    def init_weights(self) -> None:
        """Initialise, or load the checkpoint of a ``Pretrained`` init_cfg
        (strictly, in any ResNet-vd layout)."""
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            init_pretrained(
                self,
                self.init_cfg,
                fix=f'Give the ImageNet weights of a ResNet{self.depth}-vd',
                convert=resnet_vd_to_ours)
            self._is_init = True
            return
        super().init_weights()
