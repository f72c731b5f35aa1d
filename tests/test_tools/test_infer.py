# Copyright (c) OpenMMLab. All rights reserved.
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import digest

from mmriformer.apis import build_model, infer, inference
from mmriformer.testing import assert_float32_error_within, randomize_
from mmriformer.utils.image_files import find_images

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/infer.py'
CONFIG = str(ROOT / 'configs/rtdetr_riformer_s12.py')
CLASSES = ('a', 'b', 'c')
SHAPES = {'first.jpg': (120, 150), 'second.png': (90, 100)}
# 3 classes, 5 boxes per image, 160x160 inputs (>= 300 encoder tokens).
CFG_OPTIONS = {
    'model.bbox_head.num_classes': 3,
    'model.test_cfg.max_per_img': 5,
    'test_dataloader.dataset.pipeline.1.scale': (160, 160),
}
CFG_ARGS = [
    '--cfg-options', 'model.bbox_head.num_classes=3',
    'model.test_cfg.max_per_img=5',
    'test_dataloader.dataset.pipeline.1.scale=(160,160)'
]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """A 3-class s12 checkpoint and a folder of two images."""
    root = tmp_path_factory.mktemp('infer')
    options = {k: v for k, v in CFG_OPTIONS.items() if k.startswith('model.')}
    options['model.data_preprocessor.batch_augments'] = None
    torch.manual_seed(0)
    model = build_model(CONFIG, options)
    # Layer scales of 0.3 rather than 1e-5, so a folding error would show
    # in the scores of the deploy form.
    randomize_(model.backbone)
    randomize_(model.neck, seed=1)
    checkpoint = root / 'model.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': CLASSES}}}, checkpoint)
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in SHAPES.items():
        cv2.imwrite(str(images / name),
                    rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (images / 'notes.txt').write_text('not an image')
    return checkpoint, images


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)],
                          capture_output=True, text=True)


def test_infer_folder(data, tmp_path, monkeypatch):
    checkpoint, images = data
    out = tmp_path / 'out'
    proc = run_tool(CONFIG, checkpoint, images, '--out-dir', out,
                    '--score-thr', 0, *CFG_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert all((out / 'vis' / name).is_file() for name in SHAPES)
    predictions = json.loads((out / 'predictions.json').read_text())
    assert [Path(p['image']).name for p in predictions] == sorted(SHAPES)
    for prediction in predictions:
        h, w = SHAPES[Path(prediction['image']).name]
        assert len(prediction['detections']) == 5
        for det in prediction['detections']:
            assert set(det) == {'bbox', 'score', 'label', 'class'}
            x1, y1, x2, y2 = det['bbox']
            # boxes are in pixels of the original image
            assert 0 <= x1 <= x2 <= w + 1e-3 and 0 <= y1 <= y2 <= h + 1e-3
            assert 0 < det['score'] <= 1
            assert det['class'] == CLASSES[det['label']]

    # a second run replaces the files only with --force
    again = [CONFIG, checkpoint, images, '--out-dir', out, '--score-thr', 0,
             '--deploy', *CFG_ARGS]
    proc = run_tool(*again)
    assert proc.returncode != 0
    assert 'predictions.json exists and is not replaced (3 of the files' \
        in proc.stderr
    # the deploy form gives the same scores
    proc = run_tool(*again, '--force')
    assert proc.returncode == 0, proc.stderr
    deployed = json.loads((out / 'predictions.json').read_text())

    class Float64Inferencer(inference.StrictDetInferencer):

        def _load_weights_to_model(self, model, checkpoint, cfg):
            super()._load_weights_to_model(model, checkpoint, cfg)
            model.double()
            # Integer buffers in this config; as float64 they make the
            # preprocessor scale the pixels in float64 too.
            preprocessor = model.data_preprocessor
            preprocessor.mean = preprocessor.mean.double()
            preprocessor.std = preprocessor.std.double()

    # Both forms run in float32 only here, so each is compared with a
    # float64 run of the train form through the same tool: the deploy
    # form's error must be like the train form's (see
    # assert_float32_error_within); a wrong fold errs by >= 1e-3.
    monkeypatch.setattr(inference, 'StrictDetInferencer', Float64Inferencer)
    reference = infer(CONFIG, str(checkpoint), str(images),
                      str(tmp_path / 'float64'), score_thr=0,
                      cfg_options=CFG_OPTIONS)

    def scores(prediction, dtype):
        return torch.tensor(
            sorted(d['score'] for d in prediction['detections']),
            dtype=dtype)

    for expected, before, after in zip(reference, predictions, deployed,
                                       strict=True):
        assert_float32_error_within(scores(expected, torch.float64),
                                    scores(after, torch.float32),
                                    scores(before, torch.float32))


def test_missing_checkpoint(data, tmp_path):
    _, images = data
    proc = run_tool(CONFIG, tmp_path / 'missing.pth', images, '--out-dir',
                    tmp_path / 'out')
    assert proc.returncode != 0
    assert 'missing.pth does not exist' in proc.stderr
    assert not (tmp_path / 'out').exists()


def test_bad_inputs(data, tmp_path):
    checkpoint, images = data
    with pytest.raises(FileNotFoundError, match='does not exist'):
        find_images(str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='No images'):
        find_images(str(tmp_path))
    with pytest.raises(ValueError, match='is not an image'):
        find_images(str(images / 'notes.txt'))
    # an 80-class config cannot take the 3-class checkpoint
    with pytest.raises(ValueError, match=(
            r'The checkpoint .*model\.pth does not fit the model of the '
            r'config .*rtdetr_riformer_s12\.py \(\d+ of other shapes '
            r'\(first: .*\)\); use the config the checkpoint was trained '
            r'with \(it predicts 3 classes: set '
            r'model\.bbox_head\.num_classes=3\)\.')):
        infer(CONFIG, str(checkpoint), str(images), str(tmp_path))
    # a deploy config cannot take the train-form checkpoint
    deploy = dict(CFG_OPTIONS, **{'model.backbone.deploy': True,
                                  'model.neck.deploy': True})
    with pytest.raises(ValueError, match=(
            r'train-form weights for a deploy-form model\); use the '
            r'train-form config of the checkpoint and fold the model after '
            r'loading \(tools/infer\.py --deploy\)')):
        infer(CONFIG, str(checkpoint), str(images), str(tmp_path),
              cfg_options=deploy)
    assert not list(tmp_path.iterdir())


def test_damaged_image_writes_nothing(data, tmp_path):
    """Each image is decoded once, and nothing is written until all are:
    a damaged image after a good one leaves no drawing behind."""
    checkpoint, images = data
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    (mixed / 'a.png').write_bytes((images / 'second.png').read_bytes())
    (mixed / 'b.jpg').write_bytes(b'not a jpeg')
    out = tmp_path / 'out'
    proc = run_tool(CONFIG, checkpoint, mixed, '--out-dir', out, *CFG_ARGS)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: Image {mixed}/b.jpg cannot be decoded: it is damaged or '
        f'not an image; replace it or move it out of the input.')
    assert not out.exists()


@pytest.mark.parametrize('argv, message', [
    (['cfg.py', 'images'], 'the pytorch backend takes CONFIG CHECKPOINT '
     'INPUT'),
    (['--backend', 'onnxruntime', 'model.onnx', 'model.pth', 'images'],
     'the onnxruntime backend takes MODEL.onnx INPUT (no config or '
     'checkpoint)'),
    (['--backend', 'onnxruntime', 'model.onnx', 'images', '--deploy',
      '--device', 'cuda'], '--deploy, --device: for the pytorch backend '
     'only'),
    (['--backend', 'openvino', 'model.xml', 'model.pth', 'images'],
     'the openvino backend takes MODEL.xml INPUT (no config or checkpoint)'),
    (['--backend', 'onnxruntime', 'model.onnx', 'images', '--precision',
      'bf16'], '--precision: for the openvino backend only'),
])
def test_backend_arguments(tmp_path, argv, message):
    proc = run_tool(*argv, '--out-dir', tmp_path / 'o')
    assert proc.returncode == 2
    assert message in proc.stderr


def test_onnxruntime_arguments(tmp_path):
    # The arguments are taken: the run gets as far as the missing file.
    proc = run_tool('--backend', 'onnxruntime', tmp_path / 'model.onnx',
                    tmp_path, '--out-dir', tmp_path / 'o')
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: ONNX model {tmp_path}/model.onnx does not exist')


def test_infer_keeps_other_files_and_inputs(tiny, tmp_path):
    images = tmp_path / 'images'
    shutil.copytree(tiny['data'] / 'val', images)
    out = tmp_path / 'out'
    (out / 'vis').mkdir(parents=True)
    (out / 'notes.txt').write_text('mine')
    (out / 'predictions.json').write_text('my own results')
    kwargs = dict(config=str(tiny['config']),
                  checkpoint=str(tiny['ckpts']['good']))

    def run(inputs, out_dir, force=False):
        return infer(inputs=str(inputs), out_dir=str(out_dir), force=force,
                     **kwargs)

    # files this run would write are replaced only with force
    with pytest.raises(ValueError, match=(
            r'predictions\.json exists and is not replaced \(1 of the files '
            r'to write exist in .*out\); give another folder, or --force to '
            r'replace them')):
        run(images, out)
    assert (out / 'predictions.json').read_text() == 'my own results'
    (out / 'predictions.json').unlink()
    shutil.copy(images / '000000.jpg', out / 'vis/000000.jpg')
    with pytest.raises(ValueError, match=(
            r'000000\.jpg exists and is not replaced \(1 of the files')):
        run(images, out)
    (out / 'vis/000000.jpg').unlink()
    mine = {p: digest(p) for p in images.iterdir()}
    run(images, out)
    with pytest.raises(ValueError, match='exists and is not replaced'):
        run(images, out)
    run(images, out, force=True)
    assert (out / 'notes.txt').read_text() == 'mine'
    assert sorted(p.name for p in (out / 'vis').iterdir()) == sorted(
        p.name for p in images.iterdir())
    # drawing into the input folder would write over the images, even with
    # force
    with pytest.raises(ValueError, match=(
            r'would write over the input image of the same path; give an '
            r'--out-dir outside the input folder')):
        run(out / 'vis', out, force=True)
    shutil.copytree(images, tmp_path / 'in/vis')
    with pytest.raises(ValueError, match='would write over the input image'):
        run(tmp_path / 'in/vis', tmp_path / 'in')
    # the output folder is checked as the output file of other tools
    with pytest.raises(ValueError, match=(
            r'The folder .*missing of .*missing/o does not exist; create it '
            r'or give another path')):
        run(images, tmp_path / 'missing/o')
    with pytest.raises(ValueError, match=(
            r'notes\.txt is a file; give the path of a folder to write '
            r'into')):
        run(images, out / 'notes.txt', force=True)
    assert {p: digest(p) for p in images.iterdir()} == mine
    # missing or damaged inputs
    with pytest.raises(FileNotFoundError, match=r'Config .*nope\.py does '
                       r'not exist'):
        infer(str(tmp_path / 'nope.py'), kwargs['checkpoint'], str(images),
              str(tmp_path / 'o'))
    with pytest.raises(FileNotFoundError, match=r'nope does not exist'):
        run(tmp_path / 'nope', tmp_path / 'o')
    (tmp_path / 'bad').mkdir()
    shutil.copy(images / '000000.jpg', tmp_path / 'bad/0.jpg')
    (tmp_path / 'bad/a.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(ValueError, match=r'Image .*a\.jpg cannot be decoded: '
                       r'it is damaged or not an image'):
        run(tmp_path / 'bad', tmp_path / 'o')  # after 0.jpg: none drawn
    with pytest.raises(ValueError, match=(
            r'The checkpoint .*deploy\.pth does not fit the model of the '
            r'config .*tiny\.py: The checkpoint is in deploy form .*use the '
            r'deploy config')):
        infer(kwargs['config'], str(tiny['ckpts']['deploy']), str(images),
              str(tmp_path / 'o'))
    assert not (tmp_path / 'o').exists()
