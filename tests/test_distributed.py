"""Data-parallel training: torchrun ranks agree with each other and with one process."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file

from physgan import api
from physgan.cli import main
from physgan.training.runtime import Runtime

# One rank's view of the run: the same api.train every rank calls, plus a dump of its weights.
RANK_SCRIPT = """
import sys
import torch.distributed as dist
from safetensors.torch import save_file
from physgan import api

class DumpWeights:
    def on_step(self, state, logs):
        pass

    def on_end(self, state):
        tensors = {f"{name}.{key}": value.contiguous()
                   for name, module in state.modules().items()
                   for key, value in module.state_dict().items()}
        save_file(tensors, f"{sys.argv[2]}/rank{dist.get_rank()}.safetensors")

api.train(sys.argv[1], sys.argv[2] + "/run", callbacks=[DumpWeights()])
"""


def _config(tiny_config, tmp_path, **train):
    config = {**tiny_config, "loss": {"name": "wgan-gp", "r1": 0.5}}
    config["train"] = {**tiny_config["train"], "steps": 20, "device": "cpu", **train}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _weights(path):
    return load_file(str(path))


def _assert_close(a, b, atol):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=atol, rtol=0, err_msg=key)


def test_torchrun_ranks_hold_identical_weights_equal_to_one_process(tiny_config, tmp_path):
    """Two gloo ranks with half the batch each (gradient penalty and R1 included): the same
    weights on both ranks, and those of one process with the whole batch, up to the order of
    the floating-point sums in the gradient all-reduce."""
    config = _config(tiny_config, tmp_path)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launched = subprocess.run(
        [*torchrun, "--nproc-per-node=2", str(script), str(config), str(ranks)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    rank0, rank1 = _weights(ranks / "rank0.safetensors"), _weights(ranks / "rank1.safetensors")
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)

    api.train(config, tmp_path / "single")
    single = _weights(tmp_path / "single" / "checkpoint.safetensors")
    # Only rank 0 wrote the run directory, and its checkpoint holds rank 0's weights.
    written = _weights(ranks / "run" / "checkpoint.safetensors")
    _assert_close({k: written[k] for k in rank0}, rank0, atol=0)
    # 20 Adam steps amplify reduction-order differences of ~1e-7 to at most ~1e-6.
    _assert_close({k: single[k] for k in rank0}, rank0, atol=1e-5)
    lines = (ranks / "run" / "metrics.jsonl").read_text().splitlines()
    assert [yaml.safe_load(line)["step"] for line in lines] == [10, 20]
    assert len(list((ranks / "run" / "tensorboard").iterdir())) == 1  # rank 0's event file


FAMILIES = {
    "gan": None,
    "vae": {"family": "vae", "hidden": 32, "depth": 1},
    "flow": {"family": "flow", "hidden": 16, "transforms": 2, "dequantize": 0.01},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_nproc_resumes_on_another_number_of_processes(family, tiny_config, tmp_path, capsys):
    """`physgan train --nproc 2` for 10 steps, then one process to 20: the weights of one
    process that trained all 20 steps, for every family (each draws its noise globally)."""
    if FAMILIES[family] is not None:
        tiny_config = {**tiny_config, "model": FAMILIES[family]}
    config = _config(tiny_config, tmp_path, steps=10)
    if family != "gan":  # no GAN settings for the likelihood families
        raw = yaml.safe_load(config.read_text())
        del raw["loss"]
        config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--nproc", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("trained 10 steps") == 1  # the launcher reports, the ranks do not
    resume = ["train", str(config), "--out", str(out), "--resume", "--set", "train.steps=20"]
    assert main([*resume, "--no-progress"]) == 0
    api.train(config, tmp_path / "single", overrides=("train.steps=20",))
    _assert_close(
        _weights(out / "checkpoint.safetensors"),
        _weights(tmp_path / "single" / "checkpoint.safetensors"),
        atol=1e-5,
    )


def test_a_rank_error_is_one_line_and_exit_2(tiny_config, tmp_path, capsys):
    """A batch that two ranks cannot share with PacGAN packing is refused by the ranks; the
    launcher says it once, naming the key, and leaves no run directory."""
    tiny_config["model"]["discriminator"]["pack"] = 4
    config = _config(tiny_config, tmp_path, batch_size=36)  # 36 = 9 packs: not 2 x whole packs
    out = tmp_path / "run"
    code = main(["train", str(config), "--out", str(out), "--nproc", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert "train.batch_size" in err
    assert "rank 0 of 2" in err
    assert not out.exists()


# One rank that trains a DDP module and asks the other ranks a question, as the loop does, then
# names the native threads it still runs once its session is over.
THREADS_SCRIPT = """
import os
import sys
import torch
from physgan.training import distributed

def train(runtime):
    net = runtime.trainable(torch.nn.Linear(2, 1))
    net(runtime.share(torch.ones(4, 2))).sum().backward()
    return runtime.any(runtime.rank == 1)

with distributed.session("cpu", "fp32", False) as runtime:
    assert train(runtime)
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
with open(f"{sys.argv[1]}/rank{os.environ['RANK']}.txt", "w") as f:
    f.write(" ".join(sorted(names)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_a_rank_leaves_no_gloo_thread_behind_its_session(tmp_path):
    """The session destroys the process group, and gloo joins its worker threads: one still
    running while the interpreter finalises may take the GIL to let go of a finished
    collective's tensors, and the rank dies in std::terminate (issue 19)."""
    script = tmp_path / "rank.py"
    script.write_text(THREADS_SCRIPT)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launched = subprocess.run(
        [*torchrun, "--nproc-per-node=2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    threads = {rank: (tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)}
    assert not any("gloo" in names for names in threads.values()), threads


def test_runtime_shares_are_disjoint_and_cover_the_global_batch():
    batch = torch.arange(12)
    shares = [Runtime(rank=r, world_size=3).share(batch) for r in range(3)]
    assert torch.equal(torch.cat(shares), batch)


def test_nproc_must_be_positive(tiny_config, tmp_path, capsys):
    config = _config(tiny_config, tmp_path)
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--nproc", "0"]) == 2
    assert "--nproc" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_resume_is_bit_identical(
    precision, tiny_config, tmp_path, assert_same_weights
):
    """Autocast (and fp16's grad scalers, whose state the checkpoint keeps) resume exactly."""
    tiny_config["train"].update(precision=precision, device="cpu", steps=40)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    api.train(tiny_config, whole)
    api.train(tiny_config, parts, overrides=("train.steps=20",))
    api.train(tiny_config, parts, resume=True)
    assert_same_weights(whole, parts)


# Dynamo itself touches .grad of the generated (non-leaf) batch while tracing D.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_compiled_training_matches_eager_and_saves_plain_keys(tiny_config, tmp_path):
    """torch.compile changes how the forward passes run, not what they compute; checkpoints
    keep the networks' own keys (no ``_orig_mod.``), so a compiled run samples and resumes
    like any other."""
    tiny_config["train"].update(steps=3, log_every=1, checkpoint_every=3, device="cpu")
    api.train(tiny_config, tmp_path / "eager")
    api.train(tiny_config, tmp_path / "compiled", overrides=("train.compile=true",))
    eager = _weights(tmp_path / "eager" / "checkpoint.safetensors")
    compiled = _weights(tmp_path / "compiled" / "checkpoint.safetensors")
    assert not any("_orig_mod" in key for key in compiled)
    _assert_close(compiled, eager, atol=1e-5)


def test_sigterm_to_the_launcher_stops_every_rank_after_a_checkpoint(tiny_config, tmp_path):
    """SIGTERM to `physgan train --nproc 2`: the ranks agree on a step, rank 0 checkpoints, the
    command says so in one line with exit code 143, and --resume finishes the run."""
    import signal
    import time

    config = _config(tiny_config, tmp_path, steps=100_000, log_every=5, checkpoint_every=10**6)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "physgan", "train", str(config), "--out", str(out)]
    proc = subprocess.Popen(
        [*command, "--nproc", "2", "--no-progress"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not (out / "metrics.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == [err.strip()], err
    assert "SIGTERM: stopped at step" in err
    step = int(err.split("stopped at step ")[1].split()[0])
    assert step >= 5
    resumed = subprocess.run(
        [*command, "--resume", "--set", f"train.steps={step + 5}", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained {step + 5} steps" in resumed.stdout
