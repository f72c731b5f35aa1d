# Copyright (c) OpenMMLab. All rights reserved.
"""Bad input ends in one clear error naming the problem and the fix (or, if
usable, works and says what it did), and nothing a user had is lost.

Everything runs for real: configs built by the registry, checkpoints loaded
by mmengine's loader (as the Runner loads them), datasets on files on disk,
the tools as subprocesses. The model is a tiny RT-DETR-RIFormer on a small
set from :func:`generate_shapes_dataset`.
"""
import copy
import hashlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

from mmriformer.apis import build_model
from mmriformer.datasets import generate_shapes_dataset
from mmriformer.datasets.synthetic_shapes import DEFAULT_CLASSES as CLASSES
from mmriformer.models import switch_to_deploy
from mmriformer.testing import logged_messages, make_det_samples
from mmriformer.utils import cli_checks
from mmriformer.utils.checkpoint import CheckpointFileError

ROOT = Path(__file__).parents[1]
DEMO = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'

TINY_CONFIG = '''_base_ = {demo!r}
model = dict(
    num_queries=20,
    backbone=dict(arch=dict(_delete_=True, layers=[1, 1, 1, 1],
                            embed_dims=[8, 16, 24, 32])),
    neck=dict(in_channels=[16, 24, 32], embed_dims=32, num_heads=2,
              feedforward_channels=64),
    decoder=dict(num_layers=1, layer_cfg=dict(
        embed_dims=32, num_heads=2, feedforward_channels=64)),
    bbox_head=dict(embed_dims=32),
    test_cfg=dict(max_per_img=20))
data = dict(synthesize=False, data_root={data!r})
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=data)
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=data)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={data!r} + 'annotations/val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
'''


def run(*args, cwd, timeout=600):
    """Run a command with this interpreter; return the finished process."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(cfg, **overrides):
    return build_model(cfg, {f'model.{k}': v for k, v in overrides.items()})


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny config file (6 shape classes) on a small generated set, and
    checkpoints of it and of models that differ from it."""
    root = tmp_path_factory.mktemp('bad_input')
    data = root / 'data'
    for split, num in (('train', 4), ('val', 2)):
        generate_shapes_dataset(str(data), split, num, image_size=64,
                                min_size=10, max_size=30, seed=3)
    config = root / 'tiny.py'
    config.write_text(TINY_CONFIG.format(demo=str(DEMO),
                                         data=str(data) + '/'))
    cfg = Config.fromfile(config)
    meta = dict(dataset_meta=dict(classes=CLASSES))
    torch.manual_seed(0)
    ckpts = {}
    for name, overrides in (
            ('good', {}),
            ('deeper', {'backbone.arch.layers': [1, 1, 2, 1]}),
            ('wider', {'backbone.arch.embed_dims': [8, 16, 24, 40],
                       'neck.in_channels': [16, 24, 40]}),
            ('three', {'bbox_head.num_classes': 3})):
        ckpts[name] = root / f'{name}.pth'
        torch.save({'state_dict': build(cfg, **overrides).state_dict(),
                    'meta': meta}, ckpts[name])
    deploy = switch_to_deploy(build(cfg).eval())
    ckpts['deploy'] = root / 'deploy.pth'
    torch.save({'state_dict': deploy.state_dict(), 'meta': meta},
               ckpts['deploy'])
    return dict(root=root, data=data, config=config, cfg=cfg, ckpts=ckpts)


# --------------------------------------------------------------- configs


def test_unknown_type_names_it(tiny):
    with pytest.raises(KeyError, match='HybridEncoderX is not in the '
                       'mmdet::model registry. Please check whether the '
                       'value of `HybridEncoderX` is correct'):
        build(tiny['cfg'], **{'neck.type': 'HybridEncoderX'})


def test_num_classes_differs_from_dataset_classes(tiny, tmp_path):
    """mmdet's NumClassCheckHook stops the real Runner before training."""
    cfg = copy.deepcopy(tiny['cfg'])
    cfg.model.bbox_head.num_classes = 3
    cfg.work_dir = str(tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AssertionError, match=r'The `num_classes` \(3\) in '
                       r'RTDETRHead of RTDETR does not matches the length of '
                       r'`classes` 6\) in SyntheticShapesDataset'):
        runner.train()


@pytest.mark.parametrize('overrides, message', [
    ({'bbox_head.embed_dims': 16}, r'bbox_head.embed_dims=16 but the '
     r'decoder works on 32 channels; set bbox_head.embed_dims to 32'),
    ({'decoder.layer_cfg.num_levels': 2}, r'decoder.layer_cfg.num_levels=2 '
     r'but the encoder gives 3 feature levels; set decoder.layer_cfg.'
     r'num_levels to at least 3'),
], ids=['head_embed_dims', 'decoder_levels'])
def test_width_mismatch(tiny, overrides, message):
    with pytest.raises(ValueError, match=message):
        build(tiny['cfg'], **overrides)


@pytest.mark.parametrize('out_indices, message', [
    ((2, 4, 7), r'7 is out of range; network positions are 0..6'),
    ((2, 2, 6), r'must be non-empty with no position repeated'),
    ((0, 2, 4), r'neck.in_channels=\[16, 24, 32\] but the backbone gives '
     r"\[8, 16, 24\]; set neck.in_channels to the backbone's out channels"),
    ((4, 6), r'neck.in_channels=\[16, 24, 32\] but the backbone gives '
     r'\[24, 32\]'),
])
def test_bad_out_indices(tiny, out_indices, message):
    with pytest.raises(ValueError, match=message):
        build(tiny['cfg'], **{'backbone.out_indices': out_indices})


def test_other_out_indices_of_the_same_widths_work(tiny):
    """Positions 1, 3, 5 (the downsampling layers) give the widths and
    strides of 2, 4, 6: a usable model."""
    model = build(tiny['cfg'], **{'backbone.out_indices': (1, 3, 5)})
    feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 8, 8), (24, 4, 4),
                                                   (32, 2, 2)]


# ------------------------------------------------------------ checkpoints


def not_checkpoints(root, good):
    """(name, path, message) of files that are not usable checkpoints."""
    data = good.read_bytes()
    buffer = io.BytesIO()
    torch.save({'w': torch.ones(3)}, buffer,
               _use_new_zipfile_serialization=False)
    legacy = buffer.getvalue()
    files = {
        'truncated.pth': (data[:len(data) // 2],
                          r'truncated\.pth is truncated or damaged .*save, '
                          r'copy or download it again'),
        'legacy_truncated.pth': (legacy[:len(legacy) - 8],
                                 r'legacy_truncated\.pth is truncated or '
                                 r'damaged'),
        'empty.pth': (b'', r'empty\.pth is empty \(0 bytes\)'),
        'notes.txt': (b'hello, not weights\n',
                      r"notes\.txt is not a PyTorch checkpoint: it is a "
                      r"text file starting with 'hello, not weights'; give "
                      r'the \.pth file that torch\.save or the Runner '
                      r'wrote'),
        'page.pth': (b'<!DOCTYPE html><html>404</html>',
                     r"a text file starting with '<!DOCTYPE html>"),
        'photo.jpg': (cv2.imencode('.jpg', np.zeros((8, 8, 3),
                                                    np.uint8))[1].tobytes(),
                      r'photo\.jpg is not a PyTorch checkpoint: it is a '
                      r'JPEG image'),
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('images/a.txt', 'x')
    files['archive.zip'] = (archive.getvalue(), r'archive\.zip is a zip '
                            r'archive but not a PyTorch checkpoint')
    cases = []
    for name, (content, message) in files.items():
        (root / name).write_bytes(content)
        cases.append((name, root / name, message))
    (root / 'work_dir').mkdir()
    cases.append(('folder', root / 'work_dir', r'work_dir is a folder, not '
                  r'a file; give the \.pth file in it'))
    return cases


def test_files_that_are_not_checkpoints(tiny, tmp_path):
    model = build(tiny['cfg'])
    for name, path, message in not_checkpoints(tmp_path,
                                               tiny['ckpts']['good']):
        before = digest(path) if path.is_file() else None
        # mmengine's load_checkpoint, as the Runner uses it
        with pytest.raises(CheckpointFileError, match=message):
            load_checkpoint(model, str(path), map_location='cpu')
        assert before is None or digest(path) == before, name


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


def test_test_tool_refuses_checkpoint_of_another_arch(tiny, tmp_path):
    """The real Runner (mmdet's test.py): it used to test random weights
    and report 'Testing finished successfully'."""
    proc = run(ROOT / 'tools/test.py', tiny['config'],
               tiny['ckpts']['wider'], '--work-dir', tmp_path / 'test',
               cwd=tmp_path)
    assert proc.returncode != 0
    assert 'ValueError: RTDETR cannot predict: weights of the checkpoint ' \
        'do not fit the model (17 of other shapes' in proc.stderr
    assert 'Epoch(test)' not in proc.stdout + proc.stderr


# ------------------------------------------------------------------ data


def dataset_cfg(tiny, root, loader='train_dataloader', **kwargs):
    cfg = copy.deepcopy(tiny['cfg'][loader]['dataset'])
    cfg.update(data_root=str(root) + '/', **kwargs)
    return cfg


def build_dataset(cfg):
    return DATASETS.build(cfg)


def copy_data(tiny, tmp_path, edit=None):
    """A copy of the tiny set; ``edit`` changes the train annotations."""
    root = tmp_path / 'data'
    shutil.copytree(tiny['data'], root)
    ann = root / 'annotations/train.json'
    if edit is not None:
        coco = json.loads(ann.read_text())
        edited = edit(coco)
        ann.write_text(edited if isinstance(edited, str) else json.dumps(
            coco if edited is None else edited))
    return root


def test_no_dataset_at_data_root(tiny, tmp_path, monkeypatch):
    """The COCO configs without COCO: where, in which layout, and how to
    retarget (the train and the val/test datasets)."""
    cfg = Config.fromfile(ROOT / 'configs/rtdetr_riformer_s24.py')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        build_dataset(cfg.train_dataloader.dataset)
    assert str(error.value) == (
        f'Annotation file data/coco/annotations/instances_train2017.json '
        f'does not exist (relative to {tmp_path}), nor does data_root='
        f'data/coco/: CheckedCocoDataset reads COCO data laid out as '
        f'data/coco/annotations/instances_train2017.json (annotations) and '
        f'data/coco/train2017/ (images); put the data there, or retarget the '
        f'config with --cfg-options train_dataloader.dataset.data_root=DIR/ '
        f'(plus train_dataloader.dataset.ann_file=... and '
        f'train_dataloader.dataset.data_prefix.img=... if your file and '
        f'folder names differ; a top-level data_root=... does not reach the '
        f'dataloaders).')
    with pytest.raises(FileNotFoundError, match=(
            r'instances_val2017\.json does not exist .* --cfg-options '
            r'val_dataloader\.dataset\.data_root=DIR/ test_dataloader\.'
            r'dataset\.data_root=DIR/ val_evaluator\.ann_file=DIR/'
            r'annotations/instances_val2017\.json test_evaluator\.ann_file='
            r'DIR/annotations/instances_val2017\.json')):
        build_dataset(cfg.test_dataloader.dataset)
    # annotations there but no image folder
    (tmp_path / 'data/coco/annotations').mkdir(parents=True)
    shutil.copy(tiny['data'] / 'annotations/train.json',
                tmp_path / 'data/coco/annotations/instances_train2017.json')
    with pytest.raises(FileNotFoundError, match=r'^Image folder '
                       r'data/coco/train2017/ does not exist'):
        build_dataset(cfg.train_dataloader.dataset)


def test_no_dataset_with_the_train_tool(tmp_path):
    """``tools/train.py configs/rtdetr_riformer_s24.py`` without COCO: the
    traceback ends in the message above, nothing is downloaded."""
    proc = run(ROOT / 'tools/train.py',
               ROOT / 'configs/rtdetr_riformer_s24.py',
               '--work-dir', tmp_path / 'work_dir', '--cfg-options',
               'model.backbone.init_cfg=None', cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('FileNotFoundError: Annotation file data/coco/'
                           'annotations/instances_train2017.json does not '
                           'exist'), last
    assert 'train_dataloader.dataset.data_root=DIR/' in last


@pytest.mark.parametrize('damage', ['missing', 'corrupt', 'truncated'])
def test_missing_or_damaged_image(tiny, tmp_path, damage):
    root = copy_data(tiny, tmp_path)
    image = root / 'train/000001.jpg'
    if damage == 'missing':
        image.unlink()
        with pytest.raises(FileNotFoundError, match=(
                r'^1 of the 4 images of .*train\.json do not exist, e\.g\. '
                r'.*000001\.jpg; put them there, point data_prefix\.img at '
                r'the folder that holds them, or remove them')):
            build_dataset(dataset_cfg(tiny, root))
        return
    data = image.read_bytes()
    image.write_bytes(b'garbage' if damage == 'corrupt' else
                      data[:len(data) // 2])
    dataset = build_dataset(dataset_cfg(tiny, root))
    with pytest.raises(ValueError, match=(
            r'^Image .*000001\.jpg \(image id 2 of .*train\.json\) cannot '
            r'be decoded: it is damaged or not an image; replace it or '
            r'remove it from the annotation file')):
        dataset[1]


def drop_key(kind, key):
    def edit(coco):
        del coco[kind][0][key]
    return edit


@pytest.mark.parametrize('edit, error, message', [
    (lambda coco: '', ValueError, r'train\.json is not valid COCO JSON'),
    (lambda coco: '[]', ValueError, r'train\.json is not COCO \(annotation '
     r'file format .*list.* a COCO file is a JSON object with "images"'),
    (lambda coco: {'annotations': [], 'categories': coco['categories']},
     ValueError, r'train\.json has no images'),
    (drop_key('annotations', 'bbox'), ValueError, r"train\.json: annotation "
     r"1 lacks 'bbox'; COCO images need id, file_name, width, height, "
     r'annotations need id, image_id, category_id, bbox, area and '
     r'categories need id, name'),
    (drop_key('annotations', 'image_id'), ValueError, r'train\.json: an '
     r"image, annotation or category lacks the key 'image_id'; COCO images "
     r'need'),
    (drop_key('annotations', 'area'), ValueError, r"lacks 'area'"),
    (drop_key('images', 'width'), ValueError, r"image 1 lacks 'width'"),
    (lambda coco: coco['annotations'][0].update(bbox=[1, 2, 3]), ValueError,
     r'annotation 1 has bbox=\[1, 2, 3\]; a COCO bbox is a list of 4 '
     r'numbers \[x, y, width, height\]'),
    (lambda coco: coco.update(categories=coco['categories'][:2]),
     ValueError, r'has categories for only 2 of the 6 configured classes'),
], ids=['empty', 'list', 'no_images', 'no_bbox', 'no_image_id', 'no_area',
        'no_width', 'short_bbox', 'classes_missing'])
def test_empty_or_malformed_annotation_file(tiny, tmp_path, edit, error,
                                            message):
    root = copy_data(tiny, tmp_path, edit)
    with pytest.raises(error, match=message):
        build_dataset(dataset_cfg(tiny, root))


def test_unusable_boxes_are_skipped_and_logged(tiny, tmp_path):
    def edit(coco):
        base = dict(coco['annotations'][0], image_id=1)
        coco['annotations'] += [
            dict(base, id=1001, bbox=[500, 500, 10, 10], area=100),
            dict(base, id=1002, bbox=[5, 5, 0, 10], area=0),
            dict(base, id=1003, bbox=[5, 5, 10, 10], area=0),
            dict(base, id=1004, bbox=[5, 5, 10, 10], category_id=77),
            dict(base, id=1005, image_id=999),
            dict(base, id=1006, bbox=[50, 50, 40, 40], area=1600),
        ]

    root = copy_data(tiny, tmp_path, edit)
    num = len(json.loads(
        (tiny['data'] / 'annotations/train.json').read_text())['annotations'])
    with logged_messages() as messages:
        dataset = build_dataset(dataset_cfg(tiny, root))
    assert (f'{root}/annotations/train.json: skipped 5 boxes (1 area <= 0, '
            f'1 category id not among the configured classes, 1 image id '
            f'not among the images, 1 narrower or shorter than 1 px, 1 '
            f'outside the image).') in messages
    # the kept boxes: the file's own and the one partly outside its image
    kept = sum(len(dataset.get_data_info(i)['instances'])
               for i in range(len(dataset)))
    assert kept == num + 1


def test_all_boxes_unusable_is_an_error(tiny, tmp_path):
    def edit(coco):  # e.g. boxes written as normalised [x, y, w, h]
        for ann in coco['annotations']:
            ann['bbox'] = [v / 64 for v in ann['bbox']]
            ann['area'] = ann['bbox'][2] * ann['bbox'][3]

    root = copy_data(tiny, tmp_path, edit)
    with pytest.raises(ValueError, match=(
            r'train\.json: all \d+ boxes are skipped \(\d+ narrower or '
            r'shorter than 1 px\), so nothing is left to learn or evaluate; '
            r'a COCO bbox is \[x, y, width, height\] in pixels')):
        build_dataset(dataset_cfg(tiny, root))


def test_filtered_images_are_logged(tiny, tmp_path):
    def edit(coco):  # image 1 without boxes
        coco['annotations'] = [a for a in coco['annotations']
                               if a['image_id'] != 1]

    root = copy_data(tiny, tmp_path, edit)
    with logged_messages() as messages:
        dataset = build_dataset(dataset_cfg(
            tiny, root, filter_cfg=dict(filter_empty_gt=True, min_size=32)))
    assert len(dataset) == 3
    assert any(m.endswith("filter_cfg={'filter_empty_gt': True, "
                          "'min_size': 32} left out 1 of 4 images (1 "
                          "without boxes of the configured classes).")
               for m in messages), messages
    # a filter that leaves nothing used to fail in mmengine's
    # serialisation ('need at least one array to concatenate')
    with pytest.raises(ValueError, match=(
            r"train\.json: filter_cfg=\{'filter_empty_gt': False, "
            r"'min_size': 100\} leaves none of its 4 images \(4 smaller "
            r'than min_size=100 px\); lower filter_cfg\.min_size')):
        build_dataset(dataset_cfg(
            tiny, root, filter_cfg=dict(filter_empty_gt=False, min_size=100)))


# ------------------------------------------------------------------- CLI


def load_tool(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def infer_tool():
    return load_tool(ROOT / 'tools/infer.py')


def test_reparameterize_never_writes_over_its_input(tiny, tmp_path):
    path = ROOT / 'tools/model_converters/reparameterize.py'
    tool = load_tool(path)
    ckpt = tmp_path / 'train.pth'
    shutil.copy(tiny['ckpts']['good'], ckpt)
    (tmp_path / 'link.pth').symlink_to(ckpt)
    mine = tmp_path / 'mine.pth'
    mine.write_text('my notes')
    before = {p: digest(p) for p in (ckpt, mine)}
    # the command line: one line, no traceback
    proc = run(path, tiny['config'], ckpt, ckpt, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: The output {ckpt} is the input checkpoint {ckpt}; it is not '
        f'overwritten: give another output path, e.g. '
        f'{tmp_path}/train_deploy.pth.')
    for out, message in (
            (tmp_path / 'link.pth', r'is the input checkpoint'),
            (mine, r'mine\.pth exists and is not a deploy checkpoint written '
             r'by this tool; it is not overwritten'),
            (tmp_path, r'is a folder; give a file path')):
        with pytest.raises(ValueError, match=message):
            tool.reparameterize(str(tiny['config']), str(ckpt), str(out))
    assert {p: digest(p) for p in (ckpt, mine)} == before
    # its own earlier output is replaced; a missing folder is made
    out = tmp_path / 'new/deploy.pth'
    for _ in range(2):
        tool.reparameterize(str(tiny['config']), str(ckpt), str(out))
    assert sorted(p.name for p in out.parent.iterdir()) == ['deploy.pth']
    # missing inputs, a deploy-form input, another arch
    for args, error, message in (
            ((tmp_path / 'nope.py', ckpt), FileNotFoundError,
             r'Config .*nope\.py does not exist'),
            ((tiny['config'], tmp_path / 'nope.pth'), FileNotFoundError,
             r'Checkpoint .*nope\.pth can not be found'),
            ((tiny['config'], tiny['ckpts']['deploy']), ValueError,
             r'deploy\.pth is already in deploy form; there is nothing to '
             r'convert'),
            ((tiny['config'], tiny['ckpts']['wider']), ValueError,
             r'wider\.pth does not fit the model of the config .*tiny\.py '
             r'\(17 of other shapes \(first: ')):
        with pytest.raises(error, match=message):
            tool.reparameterize(*map(str, args), str(tmp_path / 'x.pth'))
        assert not (tmp_path / 'x.pth').exists()
    assert not list(tmp_path.rglob('.*.tmp*'))


def test_infer_keeps_other_files_and_inputs(tiny, infer_tool, tmp_path):
    images = tmp_path / 'images'
    shutil.copytree(tiny['data'] / 'val', images)
    out = tmp_path / 'out'
    (out / 'vis').mkdir(parents=True)
    (out / 'notes.txt').write_text('mine')
    (out / 'predictions.json').write_text('my own results')
    kwargs = dict(config=str(tiny['config']),
                  checkpoint=str(tiny['ckpts']['good']))

    def infer(inputs, out_dir):
        return infer_tool.infer(inputs=str(inputs), out_dir=str(out_dir),
                                **kwargs)

    for text in ('my own results', '{"image": "a.jpg"}'):
        (out / 'predictions.json').write_text(text)
        with pytest.raises(ValueError, match=(
                r'predictions\.json exists and was not written by this tool; '
                r'it is not overwritten: give another --out-dir or remove '
                r'it')):
            infer(images, out)
        assert (out / 'predictions.json').read_text() == text
    (out / 'predictions.json').unlink()
    shutil.copy(images / '000000.jpg', out / 'vis/000000.jpg')
    with pytest.raises(ValueError, match=(
            r'1 files in .*vis have the names of drawings this run would '
            r'write \(e\.g\. .*000000\.jpg\) but no earlier run of this tool '
            r'wrote them; they are not overwritten')):
        infer(images, out)
    (out / 'vis/000000.jpg').unlink()
    mine = {p: digest(p) for p in images.iterdir()}
    infer(images, out)
    infer(images, out)  # replaces only what the first run wrote
    assert (out / 'notes.txt').read_text() == 'mine'
    assert sorted(p.name for p in (out / 'vis').iterdir()) == sorted(
        p.name for p in images.iterdir())
    # drawing into the input folder would write over the images
    with pytest.raises(ValueError, match=(
            r'would write over the input image of the same path; give an '
            r'--out-dir outside the input folder')):
        infer(out / 'vis', out)
    shutil.copytree(images, tmp_path / 'in/vis')
    with pytest.raises(ValueError, match='would write over the input image'):
        infer(tmp_path / 'in/vis', tmp_path / 'in')
    assert {p: digest(p) for p in images.iterdir()} == mine
    # missing or damaged inputs
    with pytest.raises(FileNotFoundError, match=r'Config .*nope\.py does '
                       r'not exist'):
        infer_tool.infer(str(tmp_path / 'nope.py'), kwargs['checkpoint'],
                         str(images), str(tmp_path / 'o'))
    with pytest.raises(FileNotFoundError, match=r'nope does not exist'):
        infer(tmp_path / 'nope', tmp_path / 'o')
    (tmp_path / 'bad').mkdir()
    shutil.copy(images / '000000.jpg', tmp_path / 'bad/0.jpg')
    (tmp_path / 'bad/a.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match=r'Image .*a\.jpg cannot be decoded: '
                       r'it is damaged or not an image'):
        infer(tmp_path / 'bad', tmp_path / 'o')  # after 0.jpg: none drawn
    with pytest.raises(ValueError, match=(
            r'The checkpoint .*deploy\.pth does not fit the model of the '
            r'config .*tiny\.py: The checkpoint is in deploy form .*use the '
            r'deploy config')):
        infer_tool.infer(kwargs['config'], str(tiny['ckpts']['deploy']),
                         str(images), str(tmp_path / 'o'))
    assert not (tmp_path / 'o').exists()


def test_train_and_test_tools_check_their_inputs(tiny, tmp_path,
                                                 monkeypatch):
    configs = tmp_path / 'configs'
    configs.mkdir()
    config = configs / 'tiny.py'
    shutil.copy(tiny['config'], config)
    before = digest(config)
    text = tmp_path / 'weights.pth'
    text.write_text('not weights')
    # the command lines: one line, before mmdet's script runs
    for args, message in (
            (('train.py', config, '--work-dir', configs), rf'error: The '
             rf'work_dir {configs} holds the config {config} itself, which '
             rf'the Runner would overwrite with the merged config; give '
             rf'another --work-dir\.'),
            (('test.py', config, text), rf'error: {text} is not a PyTorch '
             rf"checkpoint: it is a text file starting with 'not weights'; "
             rf'give the \.pth file that torch\.save or the Runner wrote\.')):
        proc = run(ROOT / 'tools' / args[0], *args[1:], cwd=configs)
        assert proc.returncode != 0
        assert re.fullmatch(message, proc.stderr.strip().splitlines()[-1])
    monkeypatch.chdir(configs)
    for argv, checkpoint, message in (
            ([tmp_path / 'nope.py'], False,
             r'Config .*nope\.py does not exist; check the path\.'),
            (['tiny.py', '--cfg-options', 'work_dir=.'], False,
             r'The work_dir \. holds the config tiny\.py itself'),
            ([config, '--resume', tmp_path / 'nope.pth'], False,
             r'The --resume checkpoint .*nope\.pth does not exist'),
            ([config, tmp_path / 'nope.pth'], True,
             r'Checkpoint .*nope\.pth does not exist'),
            ([config, tiny['ckpts']['good'], '--work-dir', '.'], True,
             r'holds the config .*tiny\.py itself'),
            ([config, tiny['ckpts']['good'], '--work-dir', tmp_path], True,
             None)):
        problem = cli_checks.problems(list(map(str, argv)), checkpoint)
        assert problem == message or re.search(message, problem), problem
    assert digest(config) == before
    assert sorted(p.name for p in configs.iterdir()) == ['tiny.py']


@pytest.mark.slow
def test_training_into_a_folder_with_other_files(tiny, tmp_path):
    """A work_dir holding unrelated files: training adds its own and
    deletes or changes nothing else."""
    work_dir = tmp_path / 'work_dir'
    (work_dir / 'notes').mkdir(parents=True)
    mine = {work_dir / 'notes/plan.txt': 'plan',
            work_dir / 'results.csv': '1,2,3',
            work_dir / 'other.py': 'x = 1'}
    for path, text in mine.items():
        path.write_text(text)
    proc = run(ROOT / 'tools/train.py', tiny['config'], '--work-dir',
               work_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work_dir / 'epoch_1.pth').is_file()
    assert {p: p.read_text() for p in mine} == mine
