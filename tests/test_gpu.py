"""The same loop on a GPU: device, precision, compile and streaming (run where torch sees one)."""

import json

import h5py
import numpy as np
import pytest
import torch

from physgan import api

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(
    ("precision", "compiled"), [("fp32", False), ("bf16", False), ("fp16", False), ("bf16", True)]
)
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_a_cuda_run_resumes_exactly_and_samples_on_the_cpu(
    precision, compiled, tiny_config, tmp_path, assert_same_weights
):
    """Trained on the GPU (weights there, data there), checkpointed from the CPU copies,
    resumed to the same weights, and sampled by the CPU like any run."""
    tiny_config["train"].update(
        device="cuda", precision=precision, compile=compiled, steps=40, checkpoint_every=20
    )
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    api.train(tiny_config, whole)
    api.train(tiny_config, parts, overrides=("train.steps=20",))
    api.train(tiny_config, parts, resume=True)
    assert_same_weights(whole, parts)
    x = api.sample(whole, 1_000)
    assert x.shape == (1_000, 2)
    assert np.isfinite(x).all()


def test_a_streamed_run_on_the_gpu_matches_resume(tmp_path, assert_same_weights):
    path = tmp_path / "events.h5"
    x = np.random.default_rng(0).standard_normal((20_000, 2)).astype(np.float32)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("x", data=x, chunks=(512, 2))
    config = {
        "data": {"path": str(path), "stream": {"buffer_rows": 2048, "refresh_every": 5}},
        "model": {"generator": {"hidden": 16, "depth": 1}, "discriminator": {"hidden": 16}},
        "train": {"steps": 24, "batch_size": 64, "checkpoint_every": 8, "device": "cuda"},
    }
    api.train(config, tmp_path / "whole")
    api.train(config, tmp_path / "parts", overrides=("train.steps=12",))
    api.train(config, tmp_path / "parts", resume=True)
    assert_same_weights(tmp_path / "whole", tmp_path / "parts")


def test_model_selection_scores_a_cuda_run(tiny_config, tmp_path):
    tiny_config["train"].update(device="cuda", select_every=20, select_samples=500)
    api.train(tiny_config, tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rows = [r for r in map(json.loads, lines) if "val_score" in r]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert all(np.isfinite(r["val_score"]) for r in rows)
    assert (tmp_path / "run" / "best.safetensors").is_file()
