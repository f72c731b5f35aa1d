# Copyright (c) OpenMMLab. All rights reserved.
"""Checkpoints of another model loaded as mmengine loads them (non-strictly,
with a warning): the detector refuses to predict, naming what does not fit
and the fix, until weights that fit are loaded or it has trained."""
import pytest
import torch
from helpers import build
from mmengine.runner import load_checkpoint

from mmriformer.testing import logged_messages, make_det_samples


@pytest.mark.parametrize('name, message', [
    ('deeper', r'12 unexpected \(first: backbone\.network\.4\.1\.'),
    ('wider', r'17 of other shapes \(first: backbone\.network\.5\.proj\.'
     r'weight: \(40, 24, 3, 3\) in the checkpoint, \(32, 24, 3, 3\) in the '
     r'model\)'),
    ('three', r'to test or run it, use the config the checkpoint was trained '
     r'with \(it predicts 3 classes: set model\.bbox_head\.num_classes=3\)'),
])
def test_checkpoint_of_another_model_is_refused_at_predict(
        tiny, name, message):
    """mmengine loads non-strictly (a warning); the model then refuses to
    predict until it has trained, as fine-tuning does."""
    model = build(tiny['cfg'])
    with logged_messages() as messages:
        load_checkpoint(model, str(tiny['ckpts'][name]), map_location='cpu')
    assert any('RTDETR: weights of the checkpoint do not fit' in m
               for m in messages)
    model.eval()
    with pytest.raises(ValueError, match='RTDETR cannot predict: weights of '
                       'the checkpoint do not fit the model .*' + message):
        model.predict(torch.rand(1, 3, 64, 64), [])
    # a checkpoint that fits lifts the refusal
    load_checkpoint(model, str(tiny['ckpts']['good']), map_location='cpu')
    model.check_weights_loaded()


def test_fine_tuning_from_other_classes_trains_and_predicts(tiny):
    model = build(tiny['cfg'])
    load_checkpoint(model, str(tiny['ckpts']['three']), map_location='cpu')
    [sample] = make_det_samples([(64, 64)], [[[8, 8, 40, 40]]],
                                [torch.tensor([5])])
    model.train()
    model.loss(torch.rand(1, 3, 64, 64), [sample])
    model.eval()
    with torch.no_grad():
        [result] = model.predict(torch.rand(1, 3, 64, 64), [sample])
    assert len(result.pred_instances.scores) == 20


def test_deploy_checkpoint_into_train_model(tiny):
    model = build(tiny['cfg'])
    with pytest.raises(ValueError, match=r'The checkpoint is in deploy form '
                       r'\(it holds backbone\.network\.0\.0\.norm_reparam\.'
                       r'weight, .*use the deploy config .* or add '
                       r'--cfg-options model\.backbone\.deploy=True '
                       r'model\.neck\.deploy=True'):
        load_checkpoint(model, str(tiny['ckpts']['deploy']))


def test_train_checkpoint_into_deploy_detector(tiny):
    """The backbone folds train weights on load; the encoder's RepVGG
    blocks cannot, which used to leave them random without an error."""
    model = build(tiny['cfg'], **{'backbone.deploy': True,
                                        'neck.deploy': True})
    load_checkpoint(model, str(tiny['ckpts']['good']), map_location='cpu')
    with pytest.raises(ValueError, match=r'8 missing \(first: neck\.'
                       r'.*convert it to the deploy form first with '
                       r'tools/model_converters/reparameterize\.py'):
        model.eval().predict(torch.rand(1, 3, 64, 64), [])
    load_checkpoint(model, str(tiny['ckpts']['deploy']), map_location='cpu')
    assert model.unfit_weights is None
