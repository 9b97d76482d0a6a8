"""The feed: uint8 from the loaders, the normalisation on the model's device, and the same numbers
as the host-normalised pipeline it replaced, on real photos."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from fishbear.core.tensors import IMAGENET_MEAN, IMAGENET_STD
from fishbear.data.feed import Normalize, to_device_images
from tests.conftest import requires_shared


def test_normalize_is_albumentations_arithmetic_bit_for_bit_and_keeps_the_memory_format():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    host = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)(image=image)["image"]
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None]
    device = Normalize(IMAGENET_MEAN, IMAGENET_STD)(pixels)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(host, device)
    nhwc = pixels.contiguous(memory_format=torch.channels_last)
    out = to_device_images(nhwc, Normalize(IMAGENET_MEAN, IMAGENET_STD))
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    back = Normalize(IMAGENET_MEAN, IMAGENET_STD).undo(out)
    assert torch.allclose(back * 255, pixels.float(), atol=1e-3)
    listed = to_device_images([pixels[0], pixels[0]], Normalize(IMAGENET_MEAN, IMAGENET_STD))  # a detector's list
    assert isinstance(listed, list) and torch.equal(listed[0], out[0].contiguous())


def test_a_batch_crosses_to_the_device_in_a_quarter_of_the_bytes(tmp_path):
    from fishbear.engine.experiment import build_datamodule
    from tests.conftest import TINY, compose_train

    datamodule = build_datamodule(compose_train(TINY, tmp_path))
    datamodule.prepare_data()
    datamodule.setup("fit")
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader(), datamodule.test_dataloader()):
        batch = next(iter(loader))
        moved = batch["image"].numel() * batch["image"].element_size()
        as_floats = batch["image"].numel() * torch.finfo(torch.float32).bits // 8
        assert batch["image"].dtype == torch.uint8 and moved * 4 == as_floats


def test_predictions_on_the_shared_bears_equal_the_host_normalised_pipelines(trained_run):
    """The checkpoint's outputs through the uint8 feed (the Predictor: host fit, device
    normalisation) against the pipeline before it (albumentations' Normalize on the host, float32
    batches): equal to 1e-5 on real photos of every size and shape."""
    from fishbear.data.images import load_rgb
    from fishbear.data.transforms import build_transforms
    from fishbear.engine.inference import Predictor

    bears = requires_shared("bears", "test")
    files = sorted(bears.rglob("*.jpg"))[:40]
    predictor = Predictor.from_checkpoint(trained_run[0] / "checkpoints" / "best.ckpt")
    meta = predictor.meta
    fit = build_transforms("predict", meta.image_size, None, predictor.kind, meta.resize, meta.preprocess)
    before = A.Compose([*fit.transforms[:-1], A.Normalize(mean=meta.mean, std=meta.std),
                        A.ToTensorV2()])          # the host-normalised pipeline, as it was
    with torch.inference_mode():
        reference = torch.softmax(predictor.network(torch.stack([before(image=load_rgb(f))["image"] for f in files])), 1)
    answers = [answer for _, answer in predictor.predict_files(files)]
    now = torch.tensor([[a["probabilities"][c] for c in meta.classes] for a in answers])
    assert torch.allclose(now, reference, atol=1e-5, rtol=0)


@pytest.mark.gpu
def test_a_batch_crosses_pinned_as_uint8_and_is_normalised_on_the_gpu(tmp_path):
    """The loader pins uint8 pictures where CUDA is; on the device they become the network's
    float input with the numbers the CPU gives, keeping the channels-last format."""
    from fishbear.engine.experiment import build_datamodule
    from tests.conftest import TINY, compose_train

    data = build_datamodule(compose_train(TINY, tmp_path))
    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].dtype == torch.uint8 and batch["image"].is_pinned()
    on_gpu = data.to_model(dict(batch), "cuda")["image"]
    on_cpu = data.to_model(dict(batch), "cpu")["image"]
    assert on_gpu.is_cuda and on_gpu.dtype == torch.float32
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-5)
    nhwc = data.to_model({"image": batch["image"].contiguous(memory_format=torch.channels_last)}, "cuda")["image"]
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
