"""Runs survive being killed, stopped or diverging: nothing lost, nothing half written."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file

from physgan import api
from physgan.errors import CheckpointError, ConfigError, TrainingDiverged
from physgan.training import GANState, callbacks, session

# A run long enough (a few seconds) to be killed at random points, checkpointing often.
KILL_CONFIG = {
    "seed": 3,
    "data": {"name": "ring8", "n_train": 2_000},
    "model": {
        "generator": {"latent_dim": 2, "hidden": 16, "depth": 1},
        "discriminator": {"hidden": 16, "depth": 1},
    },
    "train": {
        "steps": 1_500,
        "batch_size": 32,
        "log_every": 25,
        "checkpoint_every": 25,
        "eval_samples": 64,
    },
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cli(config_path, out, *extra):
    cmd = [sys.executable, "-m", "physgan", "train", str(config_path), "--out", str(out)]
    return [*cmd, "--no-progress", *extra]


def _weights(run_dir):
    return load_file(str(run_dir / "checkpoint.safetensors"))


@pytest.fixture
def assert_same_run(assert_same_weights):
    """Bit-identical checkpoints and identical metrics.jsonl."""

    def check(a, b):
        assert_same_weights(a, b)
        assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()

    return check


def _assert_checkpoint_whole(run_dir):
    """A checkpoint, if there is one, loads completely (never a half-written file)."""
    path = run_dir / "checkpoint.safetensors"
    if path.exists():
        tensors = load_file(str(path))
        assert tensors, "empty checkpoint"
        assert all(np.isfinite(v).all() for v in tensors.values())


@pytest.fixture(scope="module")
def kill_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(KILL_CONFIG))
    straight = root / "straight"
    subprocess.run(_cli(config_path, straight), env=ENV, check=True, capture_output=True)
    return namedtuple("KillSetup", "root config straight")(root, config_path, straight)


def test_random_sigkills_then_resume_equal_an_uninterrupted_run(
    kill_setup, tmp_path, assert_same_run
):
    """Ten SIGKILLs at random moments (start-up, steps, checkpoint writes), then resume."""
    out = tmp_path / "killed"
    rng = np.random.default_rng()  # fresh seed each run: a different set of kill points
    kills = 0
    for _ in range(10):
        proc = subprocess.Popen(
            _cli(kill_setup.config, out, "--resume"),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 4.0))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        _assert_checkpoint_whole(out)
    subprocess.run(_cli(kill_setup.config, out, "--resume"), env=ENV, check=True)
    assert kills >= 5, "the run finished before most kills: make KILL_CONFIG longer"
    assert_same_run(kill_setup.straight, out)


def test_sigkill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(
    kill_setup, tmp_path, assert_same_run
):
    """The process dies between writing the temporary file and renaming it."""
    out = tmp_path / "killed"
    crash_at_write = f"""
import os, signal, sys
import physgan.atomic as atomic
writes = 0
real_replace = os.replace
def replace(src, dst):
    global writes
    if str(dst).endswith("checkpoint.safetensors"):
        writes += 1
        if writes == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)
atomic.os.replace = replace
from physgan.cli import main
sys.exit(main({_cli(kill_setup.config, out)[3:]!r}))
"""
    proc = subprocess.run([sys.executable, "-c", crash_at_write], env=ENV, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    _assert_checkpoint_whole(out)
    meta = load_file(str(out / "checkpoint.safetensors"))
    assert meta  # the second checkpoint (step 50) survives the third's crash
    from safetensors import safe_open

    with safe_open(str(out / "checkpoint.safetensors"), framework="np") as fh:
        assert json.loads(fh.metadata()["physgan"])["step"] == 50
    assert any(p.name.startswith(".checkpoint") for p in out.iterdir())  # the torn temp file
    subprocess.run(_cli(kill_setup.config, out, "--resume"), env=ENV, check=True)
    assert not any(p.name.startswith(".") for p in out.iterdir())  # resume cleans it up
    assert_same_run(kill_setup.straight, out)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_after_a_checkpoint(
    kill_setup, tmp_path, assert_same_run, sig, code
):
    out = tmp_path / "stopped"
    proc = subprocess.Popen(
        _cli(kill_setup.config, out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1
    assert signal.Signals(sig).name in lines[0]
    assert "--resume" in lines[0]
    from safetensors import safe_open

    with safe_open(str(out / "checkpoint.safetensors"), framework="np") as fh:
        step = json.loads(fh.metadata()["physgan"])["step"]
    assert 0 < step < KILL_CONFIG["train"]["steps"]
    assert f"step {step} " in lines[0]
    subprocess.run(_cli(kill_setup.config, out, "--resume"), env=ENV, check=True)
    assert_same_run(kill_setup.straight, out)


class _PoisonAt:
    """Set one generator weight to NaN after step ``step`` (once): a divergence on cue."""

    def __init__(self, step):
        self.step, self.done = step, False

    def on_step(self, state, logs):
        if state.step == self.step and not self.done:
            self.done = True
            with torch.no_grad():
                next(state.generator.parameters()).view(-1)[0] = float("nan")

    def on_end(self, state):
        pass


def test_divergence_stops_naming_step_and_loss_and_keeps_the_last_good_checkpoint(
    tiny_config, tmp_path
):
    with pytest.raises(TrainingDiverged) as caught:
        api.train(tiny_config, tmp_path / "run", callbacks=[_PoisonAt(30)])
    message = str(caught.value)
    assert message.startswith("training diverged at step 31: ")
    assert "loss = nan" in message
    assert "last good checkpoint (step 20)" in message  # saved at 20; the one at 40 never came
    assert "\n" not in message
    weights = _weights(tmp_path / "run")
    assert all(np.isfinite(v).all() for v in weights.values())
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["step"] == 30


def test_rollback_halves_the_learning_rates_and_finishes(tiny_config, tmp_path):
    config = {**tiny_config, "train": {**tiny_config["train"], "on_divergence": "rollback"}}
    result = api.train(config, tmp_path / "run", callbacks=[_PoisonAt(30)])
    assert result.step == 60
    assert all(np.isfinite(v).all() for v in _weights(tmp_path / "run").values())
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "checkpoint.safetensors"), framework="np") as fh:
        groups = json.loads(fh.metadata()["physgan"])["param_groups"]
    assert groups["opt_g"][0]["lr"] == pytest.approx(2e-4 / 2)
    assert groups["opt_d"][0]["lr"] == pytest.approx(2e-4 / 2)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == [10, 20, 30, 40, 50, 60]  # the rolled-back lines are replaced, not repeated


def test_rollback_gives_up_after_max_rollbacks(tiny_config, tmp_path):
    class AlwaysPoison(_PoisonAt):
        def on_step(self, state, logs):
            self.done = False
            super().on_step(state, logs)

    config = {
        **tiny_config,
        "train": {**tiny_config["train"], "on_divergence": "rollback", "max_rollbacks": 2},
    }
    with pytest.raises(TrainingDiverged, match="after 2 rollbacks"):
        api.train(config, tmp_path / "run", callbacks=[AlwaysPoison(30)])


def test_a_non_finite_weight_is_never_checkpointed(tmp_path):
    g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    state = GANState(g, d, torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()))
    with torch.no_grad():
        d.bias.fill_(float("inf"))
    saver = callbacks.Checkpointer(tmp_path / "c.safetensors", every=1)
    with pytest.raises(TrainingDiverged, match=r"weight discriminator\.bias is not finite"):
        saver.on_end(state)
    assert not (tmp_path / "c.safetensors").exists()


def test_too_little_disk_space_is_refused_before_training(tiny_config, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(session.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1 << 20))
    with pytest.raises(ConfigError, match=r"1 MiB free, a run needs about \d+ MiB"):
        api.train(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_failing_checkpoint_write_is_one_line_and_keeps_the_old_one(
    tiny_config, tmp_path, monkeypatch
):
    real = callbacks.save_checkpoint

    def full_disk(path, state, extra=None):
        if state.step > 20:
            raise OSError(28, "No space left on device")
        real(path, state, extra)

    monkeypatch.setattr(callbacks, "save_checkpoint", full_disk)
    with pytest.raises(CheckpointError, match=r"No space left on device.*step 20"):
        api.train(tiny_config, tmp_path / "run")
    _assert_checkpoint_whole(tmp_path / "run")


def test_a_read_only_output_directory_is_refused_before_training(tiny_config, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    # root writes through file modes; /proc refuses new directories to everyone.
    out = Path("/proc/physgan-test/run") if os.geteuid() == 0 else parent / "run"
    try:
        with pytest.raises(ConfigError, match=r"not writable"):
            api.train(tiny_config, out)
    finally:
        parent.chmod(0o700)
    assert not any(parent.iterdir())


def test_resume_accepts_a_run_written_before_a_setting_existed(tiny_config, tmp_path):
    short = {**tiny_config, "train": {**tiny_config["train"], "steps": 20}}
    api.train(short, tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    del saved["train"]["on_divergence"], saved["train"]["max_rollbacks"]
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert api.train(tiny_config, tmp_path / "run", resume=True).step == 60
