"""physgan.data.stream: exact resume, rank shares, shuffling across chunks, coverage, marginals,
bad files and memory, on small chunked HDF5 files."""

import threading
import tracemalloc
import weakref
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from scipy import stats

from physgan.data.stream import StreamingSampler, open_stream
from physgan.data.transforms import Standardize
from physgan.errors import ConfigError, DataError
from physgan.training.loop import fit
from physgan.training.seeding import step_generator

CHUNK = 512
SEED = 7


def _write(path, n_rows, *, n_features=2, cond=True):
    """x (n, F) float32 with column 0 the row index and column 1 iid N(0, 1); cond (n, 1)."""
    x = np.random.default_rng(3).standard_normal((n_rows, n_features)).astype(np.float32)
    x[:, 0] = np.arange(n_rows)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("x", data=x, chunks=(CHUNK, n_features))
        if cond:
            fh.create_dataset("cond", data=-x[:, :1], chunks=(CHUNK, 1))
    return path


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """20,000 rows: 39 chunks of 512 and a last one of 32."""
    return _write(tmp_path_factory.mktemp("stream") / "events.h5", 20_000)


def _plan(path, seed=SEED):
    return open_stream(path, holdout_fraction=0.1, seed=seed, fit_rows=2 * CHUNK)


def _sampler(plan, **kw):
    return StreamingSampler(plan, **{"buffer_rows": 4 * CHUNK, "refresh_every": 3, **kw})


def _train(sampler, first, last, n=64, seed=SEED):
    """Batches of steps first..last-1, drawn as the trainer does, through ``fit``."""
    batches = []

    def step(state):
        batches.append(sampler(n, step_generator(seed, state.step)))
        return {}

    sampler.start(first)
    fit(SimpleNamespace(step=first), step, max_steps=last, callbacks=[sampler])
    return batches


def _same(a, b):
    for (xa, ca), (xb, cb) in zip(a, b, strict=True):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        torch.testing.assert_close(ca, cb, rtol=0, atol=0)


@pytest.mark.parametrize("buffer_rows", [4 * CHUNK, 10**6])  # a quarter, or all of it
@pytest.mark.parametrize("resume_at", [1, 3, 10, 17])
def test_resuming_at_step_k_draws_the_same_batches(events, resume_at, buffer_rows):
    full = _train(_sampler(_plan(events), buffer_rows=buffer_rows), 0, 24)
    again = _train(_sampler(_plan(events), buffer_rows=buffer_rows), resume_at, 24)
    _same(full[resume_at:], again)


def test_a_rollback_to_an_earlier_step_draws_that_step_s_batches(events):
    full = _train(_sampler(_plan(events)), 0, 20)
    sampler = _sampler(_plan(events))
    sampler.start(0)
    for step in range(14):  # then a step diverges: the loop stops without on_end
        sampler(64, step_generator(SEED, step))
        sampler.on_step(SimpleNamespace(step=step + 1), {})
    _same(full[4:], _train(sampler, 4, 20))  # rolled back to the checkpoint of step 4


@pytest.mark.parametrize("world_size", [2, 4])
def test_the_ranks_shares_make_up_the_global_batch(events, world_size):
    plan = _plan(events)
    whole = _train(_sampler(plan), 0, 8)
    shares = [
        _train(_sampler(plan, rank=r, world_size=world_size), 0, 8) for r in range(world_size)
    ]
    for step, (x, cond) in enumerate(whole):
        torch.testing.assert_close(torch.cat([s[step][0] for s in shares]), x, rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([s[step][1] for s in shares]), cond, rtol=0, atol=0)
    with _sampler(plan, rank=1, world_size=world_size) as sampler:
        sampler.start(0)
        with pytest.raises(ConfigError, match="not a multiple of world_size"):
            sampler(world_size + 1, step_generator(0, 0))


def test_a_buffer_mixes_whole_chunks_from_across_the_file(events):
    plan = _plan(events)
    with _sampler(plan) as sampler:
        sampler.start(0)
        x, cond = sampler(40_000, step_generator(SEED, 0))  # misses none of its 2048 rows
    blocks = sampler.blocks(0)
    rows = np.concatenate([np.arange(b * CHUNK, (b + 1) * CHUNK) for b in blocks])
    np.testing.assert_array_equal(np.unique(x[:, 0].numpy()), rows)
    assert plan.block_rows == CHUNK
    assert len(blocks) == 4
    assert blocks.max() - blocks.min() > 10  # not four neighbours
    torch.testing.assert_close(cond[:, 0], -x[:, 0], rtol=0, atol=0)  # rows stay whole


def test_each_pass_visits_every_training_block_once_and_never_the_holdout(events):
    plan = _plan(events)
    sampler = _sampler(plan, buffer_rows=5 * CHUNK)  # 36 training blocks: buffers straddle passes
    buffers = [sampler.blocks(r) for r in range(36)]  # five passes
    visits = np.bincount(np.concatenate(buffers), minlength=40)
    np.testing.assert_array_equal(visits[plan.train_blocks], 5)
    np.testing.assert_array_equal(visits[plan.holdout_blocks], 0)
    assert 39 in plan.train_blocks  # the last, shorter block (32 rows) trains too
    batches = _train(sampler, 0, 36 * 3, n=2048)
    drawn = np.zeros(40, int)
    for step, (x, _) in enumerate(batches):
        blocks = x[:, 0].numpy().astype(int) // CHUNK
        assert np.isin(blocks, buffers[step // 3]).all()
        drawn += np.bincount(blocks, minlength=40)
    assert (drawn[plan.train_blocks] > 0).all()
    np.testing.assert_array_equal(drawn[plan.holdout_blocks], 0)


def test_the_split_is_disjoint_deterministic_and_seeded(events):
    plan, again, other = _plan(events), _plan(events), _plan(events, seed=SEED + 1)
    np.testing.assert_array_equal(plan.holdout_blocks, again.holdout_blocks)
    np.testing.assert_array_equal(plan.x_holdout, again.x_holdout)
    np.testing.assert_array_equal(plan.x_fit, again.x_fit)
    assert not np.array_equal(plan.holdout_blocks, other.holdout_blocks)
    every = np.sort(np.concatenate([plan.train_blocks, plan.holdout_blocks]))
    np.testing.assert_array_equal(every, np.arange(40))
    assert len(plan.holdout_blocks) == 4
    rows = np.concatenate(
        [np.arange(b * CHUNK, min((b + 1) * CHUNK, 20_000)) for b in plan.holdout_blocks]
    )
    np.testing.assert_array_equal(plan.x_holdout[:, 0], rows)
    np.testing.assert_array_equal(plan.cond_holdout[:, 0], -plan.x_holdout[:, 0])
    fit_blocks = np.unique(plan.x_fit[:, 0].astype(int) // CHUNK)
    assert len(fit_blocks) == 2
    assert np.isin(fit_blocks, plan.train_blocks).all()
    assert (plan.sample_shape, plan.cond_dim) == ((2,), 1)


def test_drawn_rows_follow_the_file_s_distribution(tmp_path):
    """Draws over whole passes, binned by chunk of the row index, against the uniform share of
    every training row: chi-square. Draws within a period share its buffer (a multinomial
    among its blocks), which makes the statistic smaller, never larger: the test is
    conservative. Seed 2024 was not tuned."""
    path = _write(tmp_path / "even.h5", 40 * CHUNK, cond=False)  # equal blocks: equal shares
    plan = _plan(path, seed=2024)
    n_train = len(plan.train_blocks)
    sampler = _sampler(plan, refresh_every=2)  # 4 blocks per buffer: 9 buffers per pass
    batches = _train(sampler, 0, 10 * n_train // 4 * 2, n=256, seed=2024)
    x = torch.cat([b[0] for b in batches]).numpy()
    counts = np.bincount(x[:, 0].astype(int) // CHUNK, minlength=40)[plan.train_blocks]
    assert counts.sum() == len(x)
    assert stats.chisquare(counts).pvalue > 0.01
    # The rows drawn hold the file's values: column 1 of the distinct ones (chosen without
    # looking at it) is an iid N(0, 1) sample.
    _, first = np.unique(x[:, 0], return_index=True)
    assert stats.kstest(x[first, 1], stats.norm.cdf).pvalue > 0.01


def test_batches_are_normalised_by_the_transform(events):
    plan = _plan(events)
    transform = Standardize.fit(plan.x_fit)
    plain = _train(_sampler(plan), 0, 4)
    normalised = _train(_sampler(plan, transform=transform.forward), 0, 4)
    for (x, _), (x_norm, _) in zip(plain, normalised, strict=True):
        assert x_norm.dtype == torch.float32
        expected = transform.forward(x.numpy()).astype(np.float32)
        np.testing.assert_array_equal(x_norm.numpy(), expected)


def _bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.h5"
    x = np.zeros((4096, 2), np.float32)
    with h5py.File(path, "w") as fh:
        if kind == "nan":
            x[::CHUNK, 1] = np.nan  # in every block: the holdout's too
        if kind == "missing":
            fh.create_dataset("y", data=x)
        elif kind == "flat":
            fh.create_dataset("x", data=x[:, 0])
        elif kind == "cond":
            fh.create_dataset("x", data=x)
            fh.create_dataset("cond", data=x[:-1])
        elif kind == "text":
            fh.create_dataset("x", data=np.array([b"a", b"b"]))
        else:
            fh.create_dataset("x", data=x, chunks=(CHUNK, 2))
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nan", r"x holds NaN or inf \(first at row \d+: nan\)"),
        ("truncated", "cannot read"),
        ("missing", "no known layout in y"),
        ("flat", r"x has shape \(4096,\), expected \(n_samples, ...\)"),
        ("cond", r"cond has shape \(4095, 2\), expected \(4096, c\)"),
        ("text", "expected numbers"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, kind, message):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(DataError, match=message) as err:
        _plan(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)


def test_nan_in_a_block_read_during_training_is_a_data_error(tmp_path):
    path = _write(tmp_path / "late.h5", 40 * CHUNK)
    plan = _plan(path)
    fit_blocks = np.unique(plan.x_fit[:, 0].astype(int) // CHUNK)
    late = plan.train_blocks[~np.isin(plan.train_blocks, fit_blocks)][-1]
    with h5py.File(path, "r+") as fh:  # after the plan has read its holdout and subsample
        fh["x"][late * CHUNK + 5, 1] = np.inf
    sampler = _sampler(plan)
    with pytest.raises(
        DataError, match=rf"x holds NaN or inf \(first at row {late * CHUNK + 5}: inf\)"
    ) as err:
        _train(sampler, 0, 30)
    assert str(err.value).startswith(f"{path}: ")
    assert not any(t.name.startswith("physgan-stream") for t in threading.enumerate())


def test_holdout_fraction_must_leave_both_parts(events):
    with pytest.raises(ConfigError, match="leaves no training or holdout block"):
        open_stream(events, holdout_fraction=0.001, seed=0)


def test_at_most_two_buffers_are_alive(tmp_path, monkeypatch):
    """The buffer in use and the one being read, never a third, and no whole-buffer copies.

    How far the next read has got when a period ends is up to the scheduler: on a loaded CPU
    the main thread often runs all of a period's steps, and drops its buffer, before the reading
    thread allocates the next one. So each step waits until the next buffer is read (up to its
    last block), the interleaving that holds the most, and every buffer the sampler allocates
    is counted through a weak reference to its memory."""
    path = _write(tmp_path / "wide.h5", 64 * CHUNK, n_features=32, cond=False)
    buffers, alive = [], []  # weak references to every buffer; how many lived at each allocation
    blocks_read = threading.Semaphore(0)

    def empty(shape):  # stream._empty, keeping count
        array = np.empty(shape, np.float32)
        alive.append(1 + sum(buffer() is not None for buffer in buffers))
        buffers.append(weakref.ref(array))
        return torch.from_numpy(array)

    def transform(block):  # on the reading thread, block by block
        blocks_read.release()
        return block

    plan = _plan(path)
    monkeypatch.setattr("physgan.data.stream._empty", empty)
    sampler = _sampler(plan, buffer_rows=16 * CHUNK, transform=transform)
    k = sampler.blocks_per_buffer

    def step(state):
        if state.step % sampler.refresh_every == 0:  # until the next buffer's last block is read
            for _ in range(k if state.step else 2 * k):  # (at step 0: this buffer's blocks too)
                assert blocks_read.acquire(timeout=60)
        sampler(64, step_generator(SEED, state.step))
        return {}

    tracemalloc.start()  # after the plan: its holdout and subsample are not counted
    try:
        with sampler:
            sampler.start(0)
            fit(SimpleNamespace(step=0), step, max_steps=30, callbacks=[sampler])  # ten swaps
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(buffers) >= 11
    assert max(alive) == 2, alive
    # Two whole buffers, of 16 blocks each, and the block being read with its few temporaries.
    block_bytes = CHUNK * 32 * 4
    assert 33 * block_bytes < peak < 36 * block_bytes


def test_only_existing_hdf5_files_stream(tmp_path):
    np.savez(tmp_path / "events.npz", x=np.zeros((10, 2)))
    with pytest.raises(DataError, match=r"events\.npz: streaming reads HDF5 files"):
        _plan(tmp_path / "events.npz")
    with pytest.raises(DataError, match=r"gone\.h5: no such file"):
        _plan(tmp_path / "gone.h5")


def _stream_config(path, **stream):
    return {
        "seed": 2,
        "data": {"path": str(path), "stream": {"buffer_rows": 4 * CHUNK, **stream}},
        "model": {
            "generator": {"latent_dim": 2, "hidden": 16, "depth": 1},
            "discriminator": {"hidden": 16, "depth": 1},
        },
        "train": {
            "steps": 24,
            "batch_size": 64,
            "log_every": 8,
            "checkpoint_every": 8,
            "eval_samples": 256,
            "device": "cpu",
        },
    }


def test_a_streamed_run_resumes_bit_identically_and_samples(events, tmp_path, assert_same_weights):
    """data.stream through physgan.train: buffers swap every 5 steps, a run stopped at step 12
    and resumed ends with the weights of an uninterrupted one, and sample/evaluate work."""
    from physgan import api

    config = _stream_config(events, refresh_every=5)
    api.train(config, tmp_path / "whole")
    api.train(config, tmp_path / "parts", overrides=("train.steps=12",))
    api.train(config, tmp_path / "parts", resume=True)
    assert_same_weights(tmp_path / "whole", tmp_path / "parts")
    assert api.sample(tmp_path / "whole", 10).shape == (10, 2)
    assert "auc" in api.evaluate(tmp_path / "whole", n=200)


def test_streaming_needs_an_hdf5_path(tmp_path):
    from physgan.config import parse_config

    np.save(tmp_path / "x.npy", np.zeros((10, 2), np.float32))
    with pytest.raises(ConfigError, match=r"data\.stream"):
        parse_config({"data": {"path": str(tmp_path / "x.npy"), "stream": True}})
    assert parse_config({"data": {"path": "a.h5", "stream": True}}).data.stream.fit_rows > 0
