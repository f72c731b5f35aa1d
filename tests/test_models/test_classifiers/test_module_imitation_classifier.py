# Copyright (c) OpenMMLab. All rights reserved.
"""ModuleImitationClassifier: RIFormer's module imitation of a PoolFormer."""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.structures import DataSample
from torch import nn

from mmriformer.apis import build_model
from mmriformer.models.losses import logit_distillation_loss
from mmriformer.models.utils import teacher_weights_for_student
from mmriformer.testing import logged_messages, randomize_

ROOT = Path(__file__).parents[3]
DEMO = ROOT / 'configs/demo'


def build(config, **model_options):
    return build_model(config,
                       {f'model.{k}': v for k, v in model_options.items()})


def distiller(**options):
    options.setdefault('teacher_checkpoint', None)
    return build(DEMO / 'riformer_tiny_distill-poolformer_shapes_cls.py',
                 **options)


def samples(n):
    return [DataSample().set_gt_label(i % 6) for i in range(n)]


def mixer_features(backbone, x):
    """(token-mixer input, output) of every block, by walking the backbone
    stage by stage instead of through hooks."""
    pairs = []
    x = backbone.patch_embed(x)
    for module in backbone.network:
        if isinstance(module, nn.Sequential):
            for block in module:
                y = block.norm1(x)
                pairs.append((y, block.token_mixer(y)))
                x = block(x)
        else:
            x = module(x)
    return pairs


# -- the pure functions -------------------------------------------------


@pytest.mark.parametrize('temperature', [1.0, 4.0])
def test_logit_distillation_loss(temperature):
    torch.manual_seed(0)
    student = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(5, 7, dtype=torch.float64)
    loss = logit_distillation_loss(student, teacher, temperature)
    # KL(p || q) from the probabilities, per sample, batch mean, times T^2.
    p = torch.softmax(teacher / temperature, -1)
    q = torch.softmax(student / temperature, -1)
    expected = (p * (p.log() - q.log())).sum(-1).mean() * temperature**2
    assert torch.allclose(loss.double(), expected, rtol=1e-6, atol=0)
    # d/ds = T (q - p) / N, the known gradient of softened KD.
    loss.backward()
    assert torch.allclose(
        student.grad, temperature * (q - p).detach() / 5, rtol=1e-5,
        atol=1e-12)
    # Zero for the teacher's logits up to a per-sample shift.
    shifted = teacher + torch.randn(5, 1, dtype=torch.float64)
    assert logit_distillation_loss(shifted, teacher,
                                   temperature).abs() < 1e-6
    with pytest.raises(ValueError, match='temperature'):
        logit_distillation_loss(student, teacher, 0.0)


def test_teacher_weights_for_student():
    teacher = {'a': torch.ones(2), 'b': torch.zeros(3), 'pool': torch.ones(1)}
    student = {'a': torch.zeros(2), 'b': torch.ones(3), 'mix': torch.ones(4)}
    match = teacher_weights_for_student(teacher, student)
    assert match.taken.keys() == {'a', 'b'}
    assert match.taken['a'] is teacher['a']
    assert match.kept == ['mix'] and match.unused == ['pool']
    with pytest.raises(ValueError, match=r'b is \(3,\) in the teacher and '
                       r'\(5,\) in the student'):
        teacher_weights_for_student(teacher, {'b': torch.ones(5)})


# -- the classifier -----------------------------------------------------


def test_losses_pair_the_blocks_in_order():
    model = distiller()
    model.init_weights()
    randomize_(model.backbone, 1)  # so that no two blocks look alike
    randomize_(model.teacher, 2)
    model.double().train()
    # No stochastic layers, so both forwards below see the same network.
    assert not any(m.p for m in model.modules() if isinstance(m, nn.Dropout))
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    losses = model.loss(x, samples(4))
    with torch.no_grad():
        student = mixer_features(model.backbone, x)
        teacher = mixer_features(model.teacher.backbone, x)
        assert len(student) == len(teacher) == 8
        expected_in = sum(
            F.mse_loss(s[0], t[0]) for s, t in zip(student, teacher)) / 8
        expected_out = sum(
            F.mse_loss(s[1], t[1]) for s, t in zip(student, teacher)) / 8
        expected_kd = logit_distillation_loss(
            model(x), model.teacher(x), model.temperature)
    assert set(losses) == {'loss_kd', 'loss_imitation_in',
                           'loss_imitation_out'}
    assert torch.allclose(losses['loss_imitation_in'], expected_in,
                          rtol=1e-12)
    assert torch.allclose(losses['loss_imitation_out'], expected_out,
                          rtol=1e-12)
    assert torch.allclose(losses['loss_kd'].double(), expected_kd.double(),
                          rtol=1e-6)
    assert losses['loss_imitation_out'] > 0 and losses['loss_kd'] > 0


def test_weights_and_label_loss():
    model = distiller(kd_weight=0.5, imitation_in_weight=2.0,
                      imitation_out_weight=3.0, gt_weight=0.7)
    model.init_weights()
    model.eval()  # no drop path: the same network in each call
    x = torch.randn(4, 3, 32, 32)
    reference = distiller()
    reference.load_state_dict(model.state_dict())
    reference.teacher.load_state_dict(model.teacher.state_dict())
    reference.eval()
    weighted, plain = model.loss(x, samples(4)), reference.loss(x, samples(4))
    for key, weight in (('loss_kd', 0.5), ('loss_imitation_in', 2.0),
                        ('loss_imitation_out', 3.0)):
        assert torch.allclose(weighted[key], weight * plain[key])
    label_loss = model.head.loss(model.extract_feat(x), samples(4))['loss']
    assert torch.allclose(weighted['loss_cls'], 0.7 * label_loss)


def test_teacher_is_frozen_and_student_learns():
    model = distiller()
    model.init_weights()
    model.train()
    assert not model.teacher.training
    assert not any(p.requires_grad for p in model.teacher.parameters())
    before = copy.deepcopy(model.teacher.state_dict())
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1)
    losses = model.loss(torch.randn(4, 3, 32, 32), samples(4))
    sum(losses.values()).backward()
    optimizer.step()
    student = dict(model.backbone.named_parameters())
    assert all(p.grad is not None for p in student.values())
    assert all(
        torch.equal(v, before[k])
        for k, v in model.teacher.state_dict().items())


def test_student_starts_from_the_teacher(tmp_path):
    teacher = build(DEMO / 'poolformer_tiny_shapes_cls.py')
    randomize_(teacher, 3)
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict()}, path)
    model = distiller(teacher_checkpoint=str(path))
    with logged_messages() as messages:
        model.init_weights()
    teacher_state = teacher.state_dict()
    assert all(
        torch.equal(v, teacher_state[k])
        for k, v in model.teacher.state_dict().items())
    student = model.state_dict()
    mixers = [k for k in student if '.token_mixer.' in k]
    assert len(mixers) == 16  # 8 blocks, weight and bias
    assert all(
        torch.equal(student[k], teacher_state[k]) for k in student
        if k not in mixers)
    report = [m for m in messages if 'took' in m]
    assert report and f'took {len(student) - 16} tensors' in report[0]
    assert mixers[0] in report[0]
    # Same stem, same weights: the first block's mixer inputs are equal.
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(
            mixer_features(model.backbone, x)[0][0],
            mixer_features(model.teacher.backbone, x)[0][0])


def test_teacher_checkpoint_of_another_arch(tmp_path):
    other = build(DEMO / 'poolformer_tiny_shapes_cls.py',
                  head=dict(type='LinearClsHead', num_classes=3,
                            in_channels=192))
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': other.state_dict()}, path)
    with pytest.raises(ValueError, match='teacher_checkpoint must be'):
        distiller(teacher_checkpoint=str(path)).init_weights()


def test_checkpoints_hold_the_student_only():
    model = distiller()
    model.init_weights()
    randomize_(model, 4)
    state = model.state_dict()
    assert not any(k.startswith('teacher.') for k in state)
    # A plain classifier of the student's config loads it strictly.
    plain = build(DEMO / 'riformer_tiny_shapes_cls.py')
    plain.load_state_dict(state, strict=True)
    # So does the distiller, keeping its teacher.
    teacher = copy.deepcopy(model.teacher.state_dict())
    again = distiller()
    again.teacher.load_state_dict(teacher)
    again.load_state_dict(state, strict=True)
    assert all(
        torch.equal(v, teacher[k])
        for k, v in again.teacher.state_dict().items())
    model.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), plain(x))


def test_layouts_must_pair():
    with pytest.raises(ValueError, match=r'the student has 8 token mixers.*'
                       r'the teacher 6'):
        distiller(teacher=dict(
            backbone=dict(arch=dict(layers=[1, 1, 2, 2],
                                    embed_dims=[32, 64, 128, 192]))))
    with pytest.raises(ValueError, match='train form'):
        distiller(backbone=dict(deploy=True))


def test_distilled_checkpoint_into_the_detector(tmp_path):
    """An S12 student checkpoint is the backbone of rtdetr_riformer_s12."""
    model = build(
        ROOT / 'configs/riformer/riformer-s12_distill-poolformer_8xb128_'
        'in1k.py', teacher_checkpoint=None)
    randomize_(model.backbone, 5)
    path = tmp_path / 'riformer-s12_distilled.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    detector = build_model(
        ROOT / 'configs/rtdetr_riformer_s12.py',
        {'model.backbone.init_cfg.checkpoint': str(path)})
    # Strict: an unexpected or missing key (but the output norms, which
    # depend on out_indices) would raise.
    with logged_messages() as messages:
        detector.backbone.init_weights()
    ours = detector.backbone.state_dict()
    taken = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
             if k.startswith('backbone.')}
    assert set(taken) <= set(ours)
    assert all(torch.equal(ours[k], v) for k, v in taken.items())
    # The detector's extra output norms start afresh, and say so.
    assert any("['norm2', 'norm4'] are not in it" in m for m in messages)
