# The shared base of configs/dfine/dfine_hgnetv2_*_coco.py: D-FINE's
# include files (Peterande/D-FINE configs/dfine/include/dfine_hgnetv2.yml,
# optimizer.yml, dataloader.yml). Their model is D-FINE-L's but for its
# backbone (set here as L's; the sizes set their own) and their schedule L's
# too but for its length; the per-size configs override what differs.
_base_ = './rtdetr_riformer_coco.py'

model = dict(
    type='DFINE',
    # As officially: pixels only scaled to [0, 1] (no mean/std), what the
    # HGNetV2 ImageNet weights were trained with.
    data_preprocessor=dict(mean=[0, 0, 0], std=[255, 255, 255]),
    backbone=dict(
        _delete_=True,
        type='HGNetV2',
        arch='B4',
        use_lab=False,
        out_indices=(1, 2, 3),  # strides 8, 16, 32
        # L and X: stem frozen, every BatchNorm frozen (freeze_at 0,
        # freeze_stem_only, freeze_norm).
        frozen_stages=0,
        norm_eval=True,
        norm_cfg=dict(type='BN', requires_grad=False),
        # D-FINE's starting point, PaddlePaddle's ImageNet PP-HGNetV2
        # (stage 1), in the official key layout without a prefix, loaded
        # strictly. Offline: model.backbone.init_cfg.checkpoint=PATH; from
        # scratch: model.backbone.init_cfg=None.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B4_stage1.pth')),
    # As D-FINE's input_proj: encoder levels of the decoder's width are
    # not projected.
    decoder_input_proj=dict(same_width_identity=True),
    neck=dict(
        type='DFineHybridEncoder',
        in_channels=[512, 1024, 2048],
        feat_strides=[8, 16, 32],
        embed_dims=256,
        num_heads=8,
        feedforward_channels=1024,
        use_encoder_idx=[2],
        num_encoder_layers=1,
        expansion=1.0,
        depth_mult=1.0),
    decoder=dict(
        num_layers=6,
        eval_idx=-1,
        reg_max=32,
        reg_scale=4.,
        layer_cfg=dict(embed_dims=256, num_heads=8, feedforward_channels=1024,
                       num_levels=3, num_points=[3, 6, 3])),
    bbox_head=dict(
        type='DFineHead',
        embed_dims=256,
        reg_max=32,
        # D-FINE's criterion: VFL 1, L1 5, GIoU 2 (RT-DETR's), FGL 0.15
        # and DDF 1.5 (DFineHead's defaults).
        loss_fgl=dict(type='FineGrainedLocalizationLoss', loss_weight=0.15),
        loss_ddf=dict(type='DecoupledDistillationFocalLoss',
                      loss_weight=1.5)))

# optimizer.yml: L's AdamW (lr 2.5e-4, backbone 1.25e-5, weight decay
# 1.25e-4) on L's groups: '^(?=.*backbone)(?!.*norm|bn).*$' and
# '^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn)).*$' with weight decay 0.
# The first holds every trainable backbone parameter, its BatchNorms
# included (HGNetV2 names them `bn`, which the lookahead only tests at the
# start of the name), so the backbone decays everything (decay_mult 1);
# outside it norms are not decayed, biases (and attention's in_proj_bias)
# are.
optim_wrapper = dict(
    optimizer=dict(lr=2.5e-4, weight_decay=1.25e-4),
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.05, decay_mult=1.0)},
        bias_decay_mult=1.0,
        flat_decay_mult=1.0))
# lr_warmup_scheduler LinearWarmup over 500 iterations, factor
# (step + 1) / 500; the MultiStepLR at epoch 500 never comes.
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 500, by_epoch=False, begin=0,
         end=500)
]
# EMA decay 0.9999 with warmups 1000 (RT-DETR's 2000).
custom_hooks = [
    dict(hook, gamma=1000) if hook['type'] == 'EMAHook' else hook
    for hook in _base_.custom_hooks
]
# dataloader.yml: total_batch_size 32 (4 x 8 GPUs).
train_dataloader = dict(batch_size=4)
auto_scale_lr = dict(base_batch_size=32)
