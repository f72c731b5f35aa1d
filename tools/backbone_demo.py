# Copyright (c) OpenMMLab. All rights reserved.
"""The backbone job: config -> weights -> deploy form -> benchmark.

1. builds mmpretrain's RIFormer-S24 ImageNet classifier with our backbone
   from ``configs/riformer/riformer-s24_8xb128_in1k.py`` and writes its
   weights as an mmpretrain-format checkpoint (no download here, so the
   weights are the config's initialisation);
2. loads that checkpoint into a detection backbone (out_indices 2, 4, 6)
   through ``init_cfg=dict(type='Pretrained', prefix='backbone.')``;
3. reparameterizes the checkpoint (as
   ``tools/model_converters/reparameterize.py`` does) and loads it strictly
   into the deploy config, checking that the logits are unchanged;
4. benchmarks our train form, mmpretrain's deploy form and our deploy form.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys

import torch

from mmriformer.apis import build_model, load_strict, reparameterize
from mmriformer.models import RIFormer
from mmriformer.testing import max_rel_diff

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs/riformer/riformer-s24_8xb128_in1k.py')
DEPLOY_CONFIG = osp.join(ROOT,
                         'configs/riformer/riformer-s24-deploy_8xb128_in1k.py')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/backbone_demo')
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    train_ckpt = osp.join(args.work_dir, 'riformer-s24_train.pth')
    deploy_ckpt = osp.join(args.work_dir, 'riformer-s24_deploy.pth')

    print(f'[1/4] building the classifier from {osp.relpath(CONFIG, ROOT)}')
    model = build_model(CONFIG).eval()
    model.init_weights()
    torch.save({'meta': {'arch': 's24'}, 'state_dict': model.state_dict()},
               train_ckpt)
    print(f'      wrote {train_ckpt}')

    print('[2/4] loading it into a detection backbone, out_indices (2, 4, 6)')
    backbone = RIFormer(arch='s24', out_indices=(2, 4, 6), init_cfg=dict(
        type='Pretrained', checkpoint=train_ckpt, prefix='backbone.'))
    backbone.init_weights()
    shapes = [tuple(o.shape) for o in backbone(torch.rand(1, 3, 640, 640))]
    print(f'      outputs at 640x640: {shapes}')

    print('[3/4] reparameterizing into the deploy form')
    reparameterize(CONFIG, train_ckpt, deploy_ckpt, DEPLOY_CONFIG,
                   force=True)
    deployed = build_model(DEPLOY_CONFIG).eval()
    load_strict(deployed, deploy_ckpt, DEPLOY_CONFIG)
    images = torch.rand(4, 3, 224, 224)
    with torch.no_grad():
        diff = max_rel_diff([model(images, mode='tensor')],
                            [deployed(images, mode='tensor')])
    print(f'      logits train vs deploy: max relative difference {diff:.1e}')

    print('[4/4] benchmarking (median of interleaved runs)')
    out = osp.join(args.work_dir, 'benchmark_backbone.json')
    subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/analysis_tools/benchmark_backbone.py'),
        '--archs', 's24', '--repeats', str(args.repeats), '--out', out
    ], check=True)
    print(f'Done. Checkpoints: {train_ckpt}, {deploy_ckpt}; figures: {out}')


if __name__ == '__main__':
    main()
