# Copyright (c) OpenMMLab. All rights reserved.
import importlib.util
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

from mmriformer.apis import build_model
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
def tool():
    spec = importlib.util.spec_from_file_location('infer', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_infer_folder(tool, data, tmp_path, monkeypatch):
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

    # the deploy form gives the same scores
    deployed = tool.infer(CONFIG, str(checkpoint), str(images),
                          str(tmp_path / 'deploy'), score_thr=0,
                          deploy=True, cfg_options=CFG_OPTIONS)

    class Float64Inferencer(tool.StrictDetInferencer):

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
    monkeypatch.setattr(tool, 'StrictDetInferencer', Float64Inferencer)
    reference = tool.infer(CONFIG, str(checkpoint), str(images),
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


def test_bad_inputs(tool, data, tmp_path):
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
        tool.infer(CONFIG, str(checkpoint), str(images), str(tmp_path))
    # a deploy config cannot take the train-form checkpoint
    deploy = dict(CFG_OPTIONS, **{'model.backbone.deploy': True,
                                  'model.neck.deploy': True})
    with pytest.raises(ValueError, match=(
            r'train-form weights for a deploy-form model\); use the '
            r'train-form config of the checkpoint and fold the model after '
            r'loading \(tools/infer\.py --deploy\)')):
        tool.infer(CONFIG, str(checkpoint), str(images), str(tmp_path),
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
])
def test_backend_arguments(tool, monkeypatch, capsys, argv, message):
    monkeypatch.setattr(sys, 'argv', ['infer.py', *argv, '--out-dir', 'o'])
    with pytest.raises(SystemExit) as exit_:
        tool.parse_args()
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_onnxruntime_arguments(tool, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [
        'infer.py', '--backend', 'onnxruntime', 'model.onnx', 'images',
        '--out-dir', 'o'])
    args = tool.parse_args()
    assert (args.model, args.input) == (['model.onnx'], 'images')


def test_infer_keeps_other_files_and_inputs(tiny, tool, tmp_path):
    images = tmp_path / 'images'
    shutil.copytree(tiny['data'] / 'val', images)
    out = tmp_path / 'out'
    (out / 'vis').mkdir(parents=True)
    (out / 'notes.txt').write_text('mine')
    (out / 'predictions.json').write_text('my own results')
    kwargs = dict(config=str(tiny['config']),
                  checkpoint=str(tiny['ckpts']['good']))

    def infer(inputs, out_dir):
        return tool.infer(inputs=str(inputs), out_dir=str(out_dir),
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
        tool.infer(str(tmp_path / 'nope.py'), kwargs['checkpoint'],
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
        tool.infer(kwargs['config'], str(tiny['ckpts']['deploy']),
                         str(images), str(tmp_path / 'o'))
    assert not (tmp_path / 'o').exists()
