# Copyright (c) OpenMMLab. All rights reserved.
"""ONNX export of the demo model, checked against PyTorch in onnxruntime,
and its INT8 form.

One export (through the CLI, with its own verification) serves every test
of the module: it takes most of the module's time.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import assert_same_predictions
from mmengine.config import Config

from mmriformer.apis import build_model, infer, infer_onnxruntime
from mmriformer.datasets import generate_shapes_dataset
from mmriformer.datasets.synthetic_shapes import DEFAULT_CLASSES as CLASSES
from mmriformer.deployment import (DeployedDetector, ONNXRuntimeDetector,
                                   compare_detections, evaluate_onnx,
                                   export_onnx, float_kernels, foreign_domains,
                                   load_detector, preprocess, quantize_int8,
                                   read_image, verify_onnx)
from mmriformer.models import switch_to_deploy
from mmriformer.testing import randomize_

ROOT = Path(__file__).parents[2]
EXPORT = ROOT / 'tools/deployment/export_onnx.py'
QUANTIZE = ROOT / 'tools/deployment/quantize_onnx.py'
TEST_ONNX = ROOT / 'tools/deployment/test_onnx.py'
CONFIG = str(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
DEPLOY_CONFIG = str(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes_deploy.py')


def build(**options):
    """The demo model with random weights; ``options`` go into the
    config."""
    model = build_model(CONFIG, options)
    # Non-trivial layer scales, so a wrong fold would show.
    randomize_(model.backbone)
    randomize_(model.neck, seed=1)
    return model.eval()


def save(model, path, classes=CLASSES):
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': classes}}}, path)
    return str(path)


def as_tensors(outputs, row):
    return {k: torch.from_numpy(v[row]) for k, v in outputs.items()}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The demo checkpoint, three images (not square) and the file the CLI
    exported from them with a dynamic batch."""
    root = tmp_path_factory.mktemp('onnx')
    torch.manual_seed(0)
    checkpoint = save(build(), root / 'model.pth')
    generate_shapes_dataset(str(root / 'shapes'), 'val', num_images=3,
                            image_size=(300, 200), empty_ratio=0.)
    images = root / 'shapes' / 'val'
    onnx_file = root / 'model.onnx'
    proc = subprocess.run(
        [sys.executable, str(EXPORT), CONFIG, checkpoint, str(onnx_file),
         '--dynamic-batch', '--verify-images',
         *map(str, sorted(images.iterdir()))],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'onnxruntime matches PyTorch on 3 images' in proc.stdout
    return checkpoint, images, str(onnx_file)


def test_standard_operators_only(exported):
    model = onnx.load(exported[2])
    # The oneDNN fast path of eager inference must not be recorded.
    assert foreign_domains(model) == []
    assert not [n for n in model.graph.node if 'mkldnn' in n.op_type]
    assert {i.name for i in model.graph.input} == {'images',
                                                   'orig_target_sizes'}
    assert max(o.version for o in model.opset_import if o.domain == '') >= 16


def test_metadata_round_trip(exported):
    detector = ONNXRuntimeDetector(exported[2])
    assert detector.classes == CLASSES
    assert detector.input_size == (224, 224)
    assert detector.batch_size is None


def test_dynamic_batch(exported):
    """A batch of two different images gives what each gives alone."""
    _, images, onnx_file = exported
    detector = ONNXRuntimeDetector(onnx_file)
    arrays = [read_image(str(p)) for p in sorted(images.iterdir())[:2]]
    inputs, sizes = preprocess(arrays, detector.input_size)
    both = detector(inputs, sizes)
    assert both['boxes'].shape == (2, 100, 4)
    for i in range(2):
        alone = detector(inputs[i:i + 1], sizes[i:i + 1])
        compare_detections(as_tensors(both, i), as_tensors(alone, 0),
                           arrays[i].shape[:2], score_tol=1e-5,
                           box_tol=1e-2)
    assert not np.allclose(both['scores'][0], both['scores'][1])


def test_infer_backends_agree(exported, tmp_path):
    """tools/infer.py writes the same predictions.json from the ONNX file
    as from the config and the checkpoint."""
    checkpoint, images, onnx_file = exported
    torch_run = infer(CONFIG, checkpoint, str(images),
                      str(tmp_path / 'pytorch'), score_thr=0)
    ort_run = infer_onnxruntime(onnx_file, str(images), str(tmp_path / 'ort'),
                                score_thr=0)
    written = json.loads((tmp_path / 'ort/predictions.json').read_text())
    assert written == ort_run
    assert_same_predictions(ort_run, torch_run, tmp_path / 'ort', (200, 300),
                            CLASSES, 100)


def test_onnxruntime_backend_errors(exported, tmp_path):
    checkpoint, images, _ = exported
    for path in (checkpoint, CONFIG):
        with pytest.raises(ValueError, match='is not an ONNX detector'):
            infer_onnxruntime(path, str(images), str(tmp_path))
    # A valid ONNX file with another interface.
    other = tmp_path / 'identity.onnx'
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node('Identity', ['x'], ['y'])], 'identity',
        [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT,
                                            [1])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT,
                                            [1])])
    onnx.save(onnx.helper.make_model(graph), other)
    with pytest.raises(ValueError, match=r"takes \('x',\) and gives"):
        ONNXRuntimeDetector(str(other))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ONNXRuntimeDetector(str(tmp_path / 'missing.onnx'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['identity.onnx']


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='Config .* does not exist'):
        load_detector(str(tmp_path / 'missing.py'), CONFIG)
    with pytest.raises(FileNotFoundError,
                       match='Checkpoint .* can not be found'):
        load_detector(CONFIG, str(tmp_path / 'missing.pth'))
    with pytest.raises(ValueError, match='is not a PyTorch checkpoint'):
        load_detector(CONFIG, CONFIG)
    three = save(build(**{'model.bbox_head.num_classes': 3}),
                 tmp_path / 'three.pth', CLASSES[:3])
    with pytest.raises(ValueError, match=(
            r'three\.pth does not fit the model of the config .*\(\d+ of '
            r'other shapes .*num_classes=3')):
        load_detector(CONFIG, three)
    model = build()
    unnamed = tmp_path / 'unnamed.pth'
    torch.save({'state_dict': model.state_dict()}, unnamed)
    with pytest.raises(ValueError, match='has no class names'):
        load_detector(CONFIG, str(unnamed))
    deployed = save(switch_to_deploy(model), tmp_path / 'deploy.pth')
    with pytest.raises(ValueError, match='is in deploy form'):
        load_detector(CONFIG, deployed)


def test_export_arguments(tmp_path):
    model = DeployedDetector(build())
    meta = {'classes': CLASSES}
    out = tmp_path / 'model.onnx'
    with pytest.raises(ValueError, match='opset 15 < 16 lacks GridSample'):
        export_onnx(model, str(out), (224, 224), meta, opset=15)
    with pytest.raises(ValueError, match='dynamic batch needs opset 18'):
        export_onnx(model, str(out), (224, 224), meta, dynamic_batch=True,
                    opset=17)
    assert not out.exists()


@pytest.mark.slow
def test_export_folds_the_normalisation(exported, tmp_path):
    """With ImageNet's mean and std (the RIFormer COCO configs'), the file
    still takes RGB images in [0, 1]: the normalisation is in the graph,
    and onnxruntime matches PyTorch run through the data preprocessor."""
    torch.manual_seed(0)
    model = build(**{
        'model.data_preprocessor.mean': [123.675, 116.28, 103.53],
        'model.data_preprocessor.std': [58.395, 57.12, 57.375]
    })
    deployed = DeployedDetector(switch_to_deploy(model).eval())
    assert not deployed.identity_normalisation
    assert DeployedDetector(build()).identity_normalisation  # the demo's
    path = export_onnx(deployed, str(tmp_path / 'normalised.onnx'),
                       (224, 224), {'classes': CLASSES})
    images = [read_image(str(p)) for p in sorted(exported[1].iterdir())]
    verify_onnx(deployed, path, images)
    # Without the fold the same file would see other pixels.
    inputs, sizes = preprocess(images[:1], (224, 224))
    with torch.no_grad():
        folded = deployed(torch.from_numpy(inputs), torch.from_numpy(sizes))
        deployed.identity_normalisation = True
        unfolded = deployed(torch.from_numpy(inputs), torch.from_numpy(sizes))
    assert not torch.allclose(folded[2], unfolded[2])


def test_forms_load_alike(tmp_path):
    """A train-form checkpoint with the train config and its folded copy
    with the deploy config give the same model."""
    torch.manual_seed(0)
    model = build()
    train = save(model, tmp_path / 'train.pth')
    deploy = save(switch_to_deploy(model), tmp_path / 'deploy.pth')
    images = torch.rand(1, 3, 160, 160)
    sizes = torch.tensor([[300, 200]])
    with torch.no_grad():
        outputs = [
            DeployedDetector(load_detector(config, path)[0])(images, sizes)
            for config, path in ((CONFIG, train), (DEPLOY_CONFIG, deploy))
        ]
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b)


def test_cli_error(tmp_path):
    out = tmp_path / 'out.onnx'
    proc = subprocess.run([
        sys.executable, str(EXPORT), CONFIG, str(tmp_path / 'missing.pth'),
        str(out)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: Checkpoint {tmp_path}/missing.pth can not be found; check '
        f'the path given to load_from, --resume, init_cfg.checkpoint or the '
        f'tool.')
    assert not out.exists()


def test_cli_refuses_outputs_before_the_work(exported, tmp_path):
    checkpoint, images, onnx_file = exported
    other = tmp_path / 'other.onnx'
    other.write_text('kept')
    missing_folder = str(tmp_path / 'missing' / 'out.onnx')
    export = [sys.executable, str(EXPORT), CONFIG, checkpoint]
    quantize = [sys.executable, str(QUANTIZE), onnx_file]
    calibration = ['--calibration-images', str(images)]
    for command, message in (
            (export + [str(other)], 'exists and is not replaced'),
            (export + [missing_folder], 'does not exist; create it'),
            (quantize + [str(other)] + calibration,
             'exists and is not replaced'),
            (quantize + [missing_folder] + calibration,
             'does not exist; create it')):
        proc = subprocess.run(command, capture_output=True, text=True)
        assert proc.returncode != 0 and message in proc.stderr
        # Refused before the work: nothing was written.
        assert 'Wrote' not in proc.stdout
    assert other.read_text() == 'kept'
    assert not (tmp_path / 'missing').exists()


@pytest.fixture(scope='module')
def quantized(exported):
    """The export quantised to INT8 by the CLI, calibrated on the three
    images."""
    _, images, onnx_file = exported
    out = onnx_file.replace('.onnx', '_int8.onnx')
    proc = subprocess.run(
        [sys.executable, str(QUANTIZE), onnx_file, out,
         '--calibration-images', str(images)],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'calibrated on 3 images' in proc.stdout
    return out


def test_int8_quantizes_every_weighted_operator(exported, quantized):
    # Every quantised operator runs as an integer kernel. With a residual
    # added by addmm (a Gemm with a bias that is not a constant) or a bias
    # split off in the graph, the backbone MLP and the decoder's
    # self-attention would dequantise their weights and run in float.
    assert float_kernels(quantized) == {}
    # Every convolution and Gemm of the export has an int8 weight.
    exported_ops = [n.op_type for n in onnx.load(exported[2]).graph.node]
    int8 = [t for t in onnx.load(quantized).graph.initializer
            if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) >= exported_ops.count('Conv') + exported_ops.count(
        'Gemm') > 0
    graph = onnx.load(quantized).graph
    assert {n.op_type for n in graph.node} >= {'QuantizeLinear',
                                               'DequantizeLinear', 'Gelu'}
    # int8 weights are a quarter of float32 ones, and the weights are
    # nearly all of the file.
    assert Path(quantized).stat().st_size < Path(exported[2]).stat(
    ).st_size / 2


def test_int8_keeps_the_interface(exported, quantized):
    _, images, onnx_file = exported
    reference, detector = map(ONNXRuntimeDetector, (onnx_file, quantized))
    assert detector.dataset_meta == reference.dataset_meta
    assert (detector.input_size, detector.batch_size) == (
        reference.input_size, reference.batch_size)
    arrays = [read_image(str(p)) for p in sorted(images.iterdir())]
    outputs = detector(*preprocess(arrays, detector.input_size))
    assert outputs['boxes'].shape == (3, 100, 4)
    assert np.isfinite(outputs['scores']).all()


def test_int8_errors(exported, tmp_path):
    _, images, onnx_file = exported
    out = tmp_path / 'int8.onnx'
    with pytest.raises(ValueError, match='calibration needs images'):
        quantize_int8(onnx_file, str(out), [])
    with pytest.raises(ValueError, match='is not an ONNX detector'):
        quantize_int8(CONFIG, str(out), [read_image(
            str(next(images.iterdir())))])
    for extra, message in (
            ([onnx_file, '--calibration-images', str(images)],
             'is the input file'),
            ([str(out), '--calibration-images', str(tmp_path)],
             'No images'),
            ([str(out), '--calibration-images', str(images),
              '--max-images', '0'], '--max-images 0: give at least 1')):
        proc = subprocess.run([sys.executable, str(QUANTIZE), onnx_file,
                               *extra], capture_output=True, text=True)
        assert proc.returncode != 0 and message in proc.stderr
    assert not out.exists()


def test_evaluation_refuses_other_classes(exported, tmp_path):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'test_dataloader.dataset.data_root': str(tmp_path),
        'test_dataloader.dataset.num_images': 1,
        'test_dataloader.dataset.metainfo.classes': CLASSES[::-1]
    })
    with pytest.raises(ValueError, match='the test set of the config has '
                       r"\('ring', "):
        evaluate_onnx(ONNXRuntimeDetector(exported[2]), cfg)


def test_evaluation_cli_errors(tmp_path):
    missing = tmp_path / 'missing.onnx'
    proc = subprocess.run(
        [sys.executable, str(TEST_ONNX), CONFIG, str(missing)],
        capture_output=True, text=True)
    assert proc.returncode != 0
    assert f'error: ONNX model {missing} does not exist' in proc.stderr


@pytest.mark.slow
def test_dfine_n_config_exports(tmp_path):
    """D-FINE-N from its COCO config (random weights, every branch
    non-zero) through the RT-DETR export path at 320 x 320: onnxruntime
    detects what PyTorch does, its [0, 1] pixels unnormalised."""
    model = build_model(ROOT / 'configs/dfine/dfine_hgnetv2_n_coco.py',
                        pretrained=False)
    deployed = DeployedDetector(switch_to_deploy(randomize_(model)).eval())
    assert deployed.identity_normalisation
    path = export_onnx(deployed, str(tmp_path / 'dfine_n.onnx'), (320, 320),
                       {'classes': tuple(f'c{i}' for i in range(80))})
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)]
    verify_onnx(deployed, path, images)
