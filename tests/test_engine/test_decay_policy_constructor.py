# Copyright (c) OpenMMLab. All rights reserved.
"""DecayPolicyOptimWrapperConstructor: custom keys keep the decay policies,
where mmengine's default constructor drops them, and may spare their norms
their lr_mult."""
from mmengine.optim import build_optim_wrapper
from torch import nn

WD = 1e-4


def toy():
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    model.neck = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    model.neck.attn = nn.MultiheadAttention(8, 2)
    model.head = nn.Linear(8, 2)
    return model


def groups(constructor, custom_keys):
    model = toy()
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-4, weight_decay=WD),
               constructor=constructor,
               paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0,
                                  bias_decay_mult=0, flat_decay_mult=0))
    optimizer = build_optim_wrapper(model, cfg).optimizer
    by_id = {id(p): g for g in optimizer.param_groups for p in g['params']}
    # Rounded: lr_mult 0.1 gives 1e-4 * 0.1, a float next to 1e-5.
    return {name: (round(by_id[id(p)]['lr'], 12),
                   round(by_id[id(p)]['weight_decay'], 12))
            for name, p in model.named_parameters()}


def test_custom_keys_keep_the_decay_policies():
    got = groups('DecayPolicyOptimWrapperConstructor',
                 {'backbone': dict(lr_mult=0.1)})
    assert got == {
        'backbone.0.weight': (1e-5, WD),
        'backbone.0.bias': (1e-5, 0.),
        'backbone.1.weight': (1e-5, 0.),
        'backbone.1.bias': (1e-5, 0.),
        'neck.0.weight': (1e-4, WD),
        'neck.0.bias': (1e-4, 0.),
        'neck.1.weight': (1e-4, 0.),
        'neck.1.bias': (1e-4, 0.),
        'neck.attn.in_proj_weight': (1e-4, WD),
        'neck.attn.in_proj_bias': (1e-4, 0.),  # 1-D: flat_decay_mult
        'neck.attn.out_proj.weight': (1e-4, WD),
        'neck.attn.out_proj.bias': (1e-4, 0.),
        'head.weight': (1e-4, WD),
        'head.bias': (1e-4, 0.),
    }
    # mmengine's own gives the keyed backbone's norm and bias full decay.
    default = groups('DefaultOptimWrapperConstructor',
                     {'backbone': dict(lr_mult=0.1)})
    assert default['backbone.1.weight'] == (1e-5, WD)
    assert {k: v for k, v in default.items() if not k.startswith('backbone')
            } == {k: v for k, v in got.items() if not k.startswith('backbone')}


def test_explicit_decay_mult_wins():
    got = groups('DecayPolicyOptimWrapperConstructor',
                 {'backbone': dict(lr_mult=0.1, decay_mult=2.)})
    assert got['backbone.1.weight'] == (1e-5, 2 * WD)
    assert got['backbone.0.bias'] == (1e-5, 2 * WD)


def test_norm_lr_mult_of_a_key():
    """DEIM's groups: the backbone's lr lowered, but not its norm's."""
    got = groups('DecayPolicyOptimWrapperConstructor',
                 {'backbone': dict(lr_mult=0.1, norm_lr_mult=1.0)})
    assert {k: v for k, v in got.items() if k.startswith('backbone')} == {
        'backbone.0.weight': (1e-5, WD),
        'backbone.0.bias': (1e-5, 0.),
        'backbone.1.weight': (1e-4, 0.),
        'backbone.1.bias': (1e-4, 0.),
    }
    without = groups('DecayPolicyOptimWrapperConstructor',
                     {'backbone': dict(lr_mult=0.1)})
    assert {k: v for k, v in got.items() if not k.startswith('backbone.1')
            } == {k: v for k, v in without.items()
                  if not k.startswith('backbone.1')}
