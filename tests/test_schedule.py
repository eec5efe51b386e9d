"""The learning-rate decay: its closed form, what each step gets, and resume."""

import pytest
import torch
import yaml

from physgan import api
from physgan.errors import ConfigError
from physgan.training.schedule import decay_factor, with_lr_decay


@pytest.mark.parametrize(
    ("step", "start", "end", "factor"),
    [
        (0, None, 10, 1.0),
        (5, 6, 10, 1.0),
        (6, 6, 10, 1.0),
        (7, 6, 10, 0.75),
        (9, 6, 10, 0.25),
        (10, 6, 10, 0.0),
        (0, 0, 4, 1.0),
        (3, 0, 4, 0.25),
    ],
)
def test_decay_factor_is_linear_from_start_to_zero_at_end(step, start, end, factor):
    assert decay_factor(step, start, end) == pytest.approx(factor, abs=0)


def test_each_step_runs_at_its_scheduled_rates():
    class State:
        def __init__(self):
            self.step = 0
            self.opts = {
                "g": torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.2),
                "d": torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4),
            }

        def optimizers(self):
            return self.opts

    seen = []

    def step_fn(state):
        seen.append(tuple(o.param_groups[0]["lr"] for o in state.opts.values()))
        return {}

    state, step = State(), with_lr_decay(step_fn, 2, 6)
    for k in range(6):
        state.step = k
        step(state)
    want = [1, 1, 1, 0.75, 0.5, 0.25]
    assert [g for g, _ in seen] == pytest.approx([0.2 * f for f in want], abs=1e-15)
    assert [d for _, d in seen] == pytest.approx([0.4 * f for f in want], abs=1e-15)
    assert all(o.param_groups[0]["base_lr"] in (0.2, 0.4) for o in state.opts.values())


def test_a_decaying_run_resumes_bit_identically_and_may_change_the_decay(
    tiny_config, tmp_path, train_until_crash, assert_same_weights
):
    cfg = {**tiny_config, "train": {**tiny_config["train"], "lr_decay": 0.5}}  # from step 30
    api.train(cfg, tmp_path / "straight")
    train_until_crash(cfg, tmp_path / "killed", at=50)  # in the decay, checkpoint at 40
    api.train(cfg, tmp_path / "killed", resume=True)
    assert_same_weights(tmp_path / "straight", tmp_path / "killed")

    # A constant-rate run extended with a decay: the run's config.yaml records it.
    api.train(tiny_config, tmp_path / "later")
    api.train(
        tiny_config,
        tmp_path / "later",
        resume=True,
        overrides=("train.steps=80", "train.lr_decay=0.25"),
    )
    train = yaml.safe_load((tmp_path / "later" / "config.yaml").read_text())["train"]
    assert (train["steps"], train["lr_decay"]) == (80, 0.25)


def test_a_decay_over_more_than_every_step_is_refused(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match=r"train\.lr_decay"):
        api.train(tiny_config, tmp_path / "run", overrides=("train.lr_decay=1.5",))
    assert not (tmp_path / "run").exists()
