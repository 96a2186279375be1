"""Training you can watch: a tiny `mmgen fit` of the DiT with the TensorBoard logger of the
trainer config and a SampleLogger writes event files holding sampled audio, mel images and
stick-figure / video GIFs; and `mmgen fit` prints none of the warnings Lightning used to raise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_cli_fit import cache, data, fit_tiny_dit, logged_tags  # noqa: F401 -- fixtures

from mmgen.dit.model import MultimodalDiT
from mmgen.pipeline import Pipeline
from mmgen.train.sample_logging import add_gif, mel_image


def test_mel_image_and_gif_summaries(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    t = np.arange(22050) / 22050
    img = mel_image((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    assert img.dtype == np.uint8 and img.shape[0] == 80 and img.shape[2] == 3
    row = img[:, img.shape[1] // 2].astype(int).sum(axis=1)  # brightest mel band: 440 Hz, low in the image
    assert 40 < int(np.argmax(row)) < 80
    with SummaryWriter(tmp_path) as writer:
        add_gif(writer, "g", np.zeros((3, 8, 8, 3), np.uint8), 10.0, 5)
    assert logged_tags(tmp_path)["images"] == ["g"]


@pytest.mark.slow
def test_fit_logs_samples_to_tensorboard_without_warnings(cache, tmp_path):  # noqa: F811
    _, media, _ = cache
    dit = MultimodalDiT({n: m.spec for n, m in media.items()}, d_model=32, depth=1, num_heads=2)
    Pipeline(dit, media).save_pretrained(tmp_path / "pipe")  # the VAEs the samples decode with
    callback = ("--trainer.callbacks=[{class_path: mmgen.train.sample_logging.SampleLogger, init_args: "
                f"{{pipeline: {tmp_path / 'pipe'}, every_n_steps: 2, num_samples: 1, steps: 2}}}}]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = fit_tiny_dit(cache, tmp_path, 4, "--data.init_args.val_fraction=0.4", "--trainer.val_check_interval=2",
                            "--trainer.limit_val_batches=1", callback)
    assert code == 0
    tags = logged_tags(tmp_path / "logs")
    assert "train/loss" in tags["scalars"] and "val/loss" in tags["scalars"]
    for kind in ("given", "sample"):
        assert f"samples/audio/{kind}/0/audio" in tags["audio"]
        for tag in (f"samples/audio/{kind}/0/mel", f"samples/motion/{kind}/0/video", f"samples/video/{kind}/0/video"):
            assert tag in tags["images"], (tag, tags["images"])
    noisy = [str(w.message)[:80] for w in caught if any(
        s in str(w.message) for s in ("args parameter", "deprecated in v4", "in eval mode", "LeafSpec"))]
    assert not noisy, noisy
