"""Shared fixtures: tiny configs and data files that train in seconds."""

import numpy as np
import pytest


@pytest.fixture
def gaussian_file(tmp_path):
    """A .npy file of 20,000 draws from N(3, 0.5^2), shape (n, 1)."""
    path = tmp_path / "gauss.npy"
    x = np.random.default_rng(11).normal(3.0, 0.5, size=(20_000, 1)).astype(np.float32)
    np.save(path, x)
    return path


@pytest.fixture
def train_until_crash(monkeypatch):
    """Train a config into a run directory and crash right after step ``at`` (its callbacks,
    checkpoint and metrics line of that step written), as a killed run would stop."""
    from physgan import api
    from physgan.training import callbacks, session

    class Crash(RuntimeError):
        pass

    def run(config, out, at):
        class CrashingCheckpointer(callbacks.Checkpointer):
            def on_step(self, state, logs):
                super().on_step(state, logs)
                if state.step == at:
                    raise Crash

        with monkeypatch.context() as m:
            m.setattr(session, "Checkpointer", CrashingCheckpointer)
            with pytest.raises(Crash):
                api.train(config, out)

    return run


@pytest.fixture
def assert_same_weights():
    """A check that two run directories hold bit-identical checkpoints (every tensor)."""
    from safetensors.numpy import load_file

    def check(a, b):
        ta = load_file(str(a / "checkpoint.safetensors"))
        tb = load_file(str(b / "checkpoint.safetensors"))
        assert ta.keys() == tb.keys()
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=key)

    return check


@pytest.fixture
def tiny_config():
    """A small, fast GAN config on the 8-mode ring (the tests override what they need)."""
    return {
        "seed": 1,
        "data": {"name": "ring8", "n_train": 4_000},
        "model": {
            "generator": {"kind": "mlp", "latent_dim": 4, "hidden": 32, "depth": 2},
            "discriminator": {"kind": "mlp", "hidden": 32, "depth": 2},
        },
        "train": {
            "steps": 60,
            "batch_size": 64,
            "log_every": 10,
            "checkpoint_every": 20,
            "eval_samples": 256,
        },
    }


@pytest.fixture
def tiny_jet_config(tmp_path):
    """A YAML file of a tiny EPiC GAN on 240 built-in gluon jets (seconds to simulate and train)."""
    import yaml

    config = {
        "seed": 1,
        "data": {"name": "jets-gluon", "n_train": 240, "holdout_fraction": 0.5},
        "model": {
            "generator": {"kind": "epic", "hidden": 16, "layers": 1, "global_dim": 4},
            "discriminator": {"kind": "epic", "hidden": 16, "layers": 1, "global_dim": 4},
        },
        "train": {"steps": 4, "batch_size": 16, "log_every": 2, "checkpoint_every": 4},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# Overrides that make the shipped jet-images config a 4-step run on 8 W and 8 QCD images.
TINY_IMAGES = (
    "data.n_train=16",
    "data.holdout_fraction=0.25",
    "model.generator.latent_dim=4",
    "model.generator.base_channels=4",
    "model.discriminator.base_channels=4",
    "train.steps=4",
    "train.batch_size=4",
    "train.log_every=2",
    "train.checkpoint_every=4",
    "train.eval_samples=4",
)


@pytest.fixture(scope="session")
def class_image_run():
    """A function (root, sample) -> run directory: a class-conditional DCGAN trained 4 steps on
    200 fake 9x9 images of two classes (200 more held out), with the ``sample`` settings."""

    def train(root, sample):
        from physgan import api

        rng = np.random.default_rng(0)
        images = rng.gamma(0.5, 20.0, (400, 1, 9, 9)) * (rng.random((400, 1, 9, 9)) < 0.3)
        cond = np.eye(2)[np.arange(400) % 2]
        path = root / "images.npz"
        np.savez(path, x=images.astype(np.float32), cond=cond.astype(np.float32))
        config = {
            "data": {
                "path": str(path),
                "conditional": True,
                "transform": "scale",
                "holdout_fraction": 0.5,
            },
            "model": {
                "generator": {
                    "kind": "dcgan",
                    "latent_dim": 4,
                    "base_channels": 4,
                    "output": "relu",
                },
                "discriminator": {"kind": "dcgan", "base_channels": 4},
            },
            "train": {"steps": 4, "batch_size": 16, "log_every": 2, "eval_samples": 16},
            "sample": sample,
        }
        return api.train(config, root / "run").run_dir

    return train


@pytest.fixture(scope="session")
def tiny_image_overrides():
    """:data:`TINY_IMAGES`: ``api.train("jet-images", out, overrides=...)`` in seconds."""
    return TINY_IMAGES


@pytest.fixture(autouse=True, scope="session")
def _jet_cache(tmp_path_factory):
    """Built-in jet data (data.name jets-*) cache in a temporary directory, not ~/.cache."""
    import os

    previous = os.environ.get("PHYSGAN_CACHE")
    os.environ["PHYSGAN_CACHE"] = str(tmp_path_factory.mktemp("jet-cache"))
    yield
    if previous is None:
        del os.environ["PHYSGAN_CACHE"]
    else:
        os.environ["PHYSGAN_CACHE"] = previous
