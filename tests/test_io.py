"""physgan.data.io: every format written by its own library, shards, layouts, bad input."""

import sys
import tempfile
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physgan.data.io import load, read_arrays
from physgan.errors import DataError, MissingExtraError

RNG = np.random.default_rng(5)
N = 12
PT = RNG.normal(50.0, 10.0, size=N)
P4 = RNG.normal(size=(N, 3)).astype(np.float32)
IDS = np.arange(N, dtype=np.int32)


def _h5(path: Path, **arrays: np.ndarray) -> Path:
    with h5py.File(path, "w") as fh:
        for name, arr in arrays.items():
            fh.create_dataset(name, data=arr)
    return path


def _root(path: Path, trees=("events",), **extra_branches) -> Path:
    """A ROOT file whose TTrees hold pt (double), p (float[3]) and id (int32)."""
    branches = {"pt": PT, "p": P4, "id": IDS, **extra_branches}
    with uproot.recreate(path) as fh:
        for name in trees:
            tree = fh.mktree(name, {key: _root_type(arr) for key, arr in branches.items()})
            tree.extend(branches)
    return path


def _root_type(arr):
    if isinstance(arr, ak.Array):
        return arr.type.content
    return (arr.dtype, arr.shape[1:]) if arr.ndim > 1 else arr.dtype


# --- round trips ------------------------------------------------------------------------------


def test_npy_is_one_array_named_x(tmp_path):
    np.save(tmp_path / "a.npy", P4)
    arrays = load(tmp_path / "a.npy")
    assert list(arrays) == ["x"]
    np.testing.assert_array_equal(arrays["x"], P4)
    np.testing.assert_array_equal(load(tmp_path / "a.npy", rows=slice(2, 5))["x"], P4[2:5])


def test_npz_round_trip_keeps_dtypes_and_selects_keys(tmp_path):
    np.savez(tmp_path / "a.npz", pt=PT, p=P4, id=IDS)
    arrays = load(tmp_path / "a.npz")
    assert list(arrays) == ["pt", "p", "id"]
    for name, expected in {"pt": PT, "p": P4, "id": IDS}.items():
        np.testing.assert_array_equal(arrays[name], expected)
        assert arrays[name].dtype == expected.dtype
    assert list(load(tmp_path / "a.npz", keys=["id", "pt"])) == ["id", "pt"]
    np.testing.assert_array_equal(load(tmp_path / "a.npz", "p")["p"], P4)


def test_hdf5_nested_groups_are_addressed_by_path(tmp_path):
    path = tmp_path / "a.hdf5"
    with h5py.File(path, "w") as fh:
        fh.create_dataset("pt", data=PT)
        fh.create_group("reco").create_dataset("p", data=P4)
        fh.create_group("truth/deep").create_dataset("id", data=IDS)
    arrays = load(path)
    assert sorted(arrays) == ["pt", "reco/p", "truth/deep/id"]
    np.testing.assert_array_equal(arrays["pt"], PT)
    np.testing.assert_array_equal(arrays["reco/p"], P4)
    np.testing.assert_array_equal(arrays["truth/deep/id"], IDS)
    sliced = load(path, keys=["reco/p"], rows=slice(3, 9, 2))
    np.testing.assert_array_equal(sliced["reco/p"], P4[3:9:2])


def test_root_branches_including_a_fixed_size_array(tmp_path):
    path = _root(tmp_path / "a.root")
    arrays = load(path)
    assert sorted(arrays) == ["id", "p", "pt"]
    np.testing.assert_array_equal(arrays["pt"], PT)
    np.testing.assert_array_equal(arrays["p"], P4)
    assert arrays["p"].shape == (N, 3)
    np.testing.assert_array_equal(arrays["id"], IDS)
    named = load(f"{path}:events", keys=["p"], rows=slice(-4, None))
    np.testing.assert_array_equal(named["p"], P4[-4:])


def test_root_with_several_trees_needs_a_name(tmp_path):
    path = _root(tmp_path / "two.root", trees=("events", "friends"))
    with pytest.raises(DataError, match=r"holds 2 trees \(events, friends\)"):
        load(path)
    np.testing.assert_array_equal(load(f"{path}:friends")["pt"], PT)
    with pytest.raises(DataError, match="no tree named 'nope'"):
        load(f"{path}:nope")


def test_root_jagged_branch_is_refused_but_others_read(tmp_path):
    jagged = ak.Array([[1.0] * (i % 3) for i in range(N)])
    path = _root(tmp_path / "j.root", hits=jagged)
    with pytest.raises(DataError, match="hits is jagged"):
        load(path)
    np.testing.assert_array_equal(load(path, keys=["pt", "nhits"])["nhits"], np.arange(N) % 3)


def test_parquet_columns_and_fixed_length_lists(tmp_path):
    table = pa.table(
        {
            "pt": PT,
            "id": IDS,
            "p": pa.array(P4.tolist(), pa.list_(pa.float32(), 3)),
            # a variable-length list type whose rows all have 2 entries is still regular
            "pair": pa.array([[i, 2 * i] for i in range(N)], pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")
    arrays = load(tmp_path / "a.parquet")
    assert list(arrays) == ["pt", "id", "p", "pair"]
    np.testing.assert_array_equal(arrays["pt"], PT)
    np.testing.assert_array_equal(arrays["id"], IDS)
    np.testing.assert_array_equal(arrays["p"], P4)
    np.testing.assert_array_equal(arrays["pair"], np.stack([np.arange(N), 2 * np.arange(N)], 1))


def test_root_rntuple_is_read_like_a_tree(tmp_path):
    with uproot.recreate(tmp_path / "nt.root") as fh:
        fh["ntuple"] = {"pt": PT, "id": IDS}  # uproot 5.7 writes a dict as an RNTuple
    arrays = load(tmp_path / "nt.root")
    np.testing.assert_array_equal(arrays["pt"], PT)
    np.testing.assert_array_equal(arrays["id"], IDS)


def test_jagged_particle_branches_are_read_as_a_padded_cloud(tmp_path):
    # NanoAOD-style jets written by uproot alone, without physgan's metadata naming N.
    eta = ak.Array([[0.1, -0.2], [], [0.3, 0.0, 0.5]])
    particle = ak.zip({"eta": eta, "phi": -eta, "pt": eta + 1.0})
    jet = ak.zip({"pt": [500.0, 600.0, 700.0], "eta": [0.0] * 3, "mass": [1.0] * 3})
    jet = ak.with_field(jet, ak.num(eta), "nParticle")
    path = tmp_path / "nano.root"
    with uproot.recreate(path) as fh:
        tree = fh.mktree("Events", {"Particle": particle.type.content, "Jet": jet.type.content})
        tree.extend({"Particle": particle, "Jet": jet})
    expected = np.zeros((3, 3, 4), np.float32)
    expected[0, :2] = [[0.1, -0.1, 1.1, 1.0], [-0.2, 0.2, 0.8, 1.0]]
    expected[2] = [[0.3, -0.3, 1.3, 1.0], [0.0, 0.0, 1.0, 1.0], [0.5, -0.5, 1.5, 1.0]]
    x, cond = read_arrays(path)
    np.testing.assert_allclose(x, expected, rtol=1e-6)
    assert cond is None
    arrays = load(path, ["jets", "Jet_pt"], rows=slice(1, None))
    np.testing.assert_array_equal(arrays["jets"], [[600.0, 0.0, 1.0, 0.0], [700.0, 0.0, 1.0, 3.0]])
    np.testing.assert_array_equal(arrays["Jet_pt"], [600.0, 700.0])


def test_particle_lists_of_different_lengths_are_refused(tmp_path):
    lists = {name: pa.array([[0.1, 0.2], [0.3]]) for name in ("Particle_eta", "Particle_pt")}
    pq.write_table(
        pa.table({**lists, "Particle_phi": pa.array([[0.1], [0.3]])}), tmp_path / "a.parquet"
    )
    with pytest.raises(DataError, match="Particle_phi and Particle_eta differ in length"):
        load(tmp_path / "a.parquet")


@pytest.mark.parametrize(
    ("module", "suffix"), [("uproot", ".root"), ("pyarrow.parquet", ".parquet")]
)
def test_missing_extra_names_it(tmp_path, monkeypatch, module, suffix):
    path = tmp_path / f"a{suffix}"
    path.write_bytes(b"anything")
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=r"pip install 'physgan\[hep\]'"):
        load(path)


# --- shards -----------------------------------------------------------------------------------


def _shards(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """Three HDF5 shards written out of name order; returns the expected concatenation."""
    directory.mkdir()
    parts = {name: RNG.normal(size=(3 + i, 2)) for i, name in enumerate(["s1", "s0", "s2"])}
    for name, x in parts.items():
        _h5(directory / f"{name}.h5", x=x, id=np.full(len(x), int(name[1])))
    ordered = [parts[name] for name in ["s0", "s1", "s2"]]
    ids = np.concatenate([np.full(len(x), i) for i, x in enumerate(ordered)])
    return np.concatenate(ordered), ids


@pytest.mark.parametrize("pattern", ["{d}", "{d}/*.h5", "{d}/s?.h5"])
def test_shards_concatenate_in_name_order(tmp_path, pattern):
    x, ids = _shards(tmp_path / "d")
    (tmp_path / "d" / "README.txt").write_text("ignored in a directory")
    arrays = load(pattern.format(d=tmp_path / "d"), keys=["x", "id"])
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["id"], ids)
    np.testing.assert_array_equal(load(tmp_path / "d", rows=slice(2, 7))["x"], x[2:7])


def test_root_shards_with_a_tree_name(tmp_path):
    for name in ["b", "a"]:
        _root(tmp_path / f"{name}.root", trees=("events", "other"))
    arrays = load(f"{tmp_path}/*.root:events", keys=["pt"])
    np.testing.assert_array_equal(arrays["pt"], np.concatenate([PT, PT]))


def test_shard_with_other_keys_is_named(tmp_path):
    _shards(tmp_path / "d")
    _h5(tmp_path / "d" / "s3.h5", x=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"s3\.h5: shard's arrays differ from s0\.h5's") as err:
        load(tmp_path / "d")
    assert "missing: id" in str(err.value)
    with pytest.raises(DataError, match=r"s3\.h5: no array named 'id'"):
        load(tmp_path / "d", keys=["id"])


def test_shard_with_other_shape_is_named(tmp_path):
    _shards(tmp_path / "d")
    _h5(tmp_path / "d" / "s3.h5", x=np.zeros((2, 5)), id=np.zeros(2))
    with pytest.raises(DataError, match=r"s3\.h5: x has shape \(2, 5\)"):
        load(tmp_path / "d")


@pytest.mark.parametrize(
    ("files", "pattern", "needle"),
    [
        ([], "{d}/*.h5", "no files match"),
        (["notes.txt"], "{d}", "no data files"),
        (["a.h5", "b.npz"], "{d}", r"shards mix formats \(\.h5, \.npz\)"),
    ],
)
def test_shards_that_cannot_be_read(tmp_path, files, pattern, needle):
    for name in files:
        (tmp_path / name).write_text("x")
    with pytest.raises(DataError, match=needle):
        load(pattern.format(d=tmp_path))


# --- layouts for training ---------------------------------------------------------------------


def test_read_arrays_calochallenge_layout(tmp_path):
    energies = RNG.uniform(1.0, 1000.0, size=(N, 1))
    showers = RNG.exponential(size=(N, 368))
    path = _h5(tmp_path / "dataset_1_photons_1.hdf5", incident_energies=energies, showers=showers)
    x, cond = read_arrays(path)
    np.testing.assert_array_equal(x, showers.astype(np.float32))
    np.testing.assert_array_equal(cond, energies.astype(np.float32))
    assert x.dtype == cond.dtype == np.float32


def test_read_arrays_jet_layout(tmp_path):
    particles = RNG.normal(size=(N, 30, 4))
    path = _h5(tmp_path / "jets.h5", particles=particles, jets=RNG.normal(size=(N, 4)))
    x, cond = read_arrays(path)
    np.testing.assert_array_equal(x, particles.astype(np.float32))
    assert cond is None


def test_read_arrays_x_and_cond_from_shards(tmp_path):
    (tmp_path / "d").mkdir()
    for i in range(2):
        np.savez(
            tmp_path / "d" / f"{i}.npz", x=P4[6 * i : 6 * i + 6], cond=IDS[6 * i : 6 * i + 6, None]
        )
    x, cond = read_arrays(tmp_path / "d")
    np.testing.assert_array_equal(x, P4)
    np.testing.assert_array_equal(cond, IDS[:, None].astype(np.float32))


def test_read_arrays_unknown_layout_lists_names_and_layouts(tmp_path):
    path = _h5(tmp_path / "odd.h5", energy=PT, hits=P4)
    with pytest.raises(DataError, match=r"odd\.h5: no known layout in energy, hits") as err:
        read_arrays(path)
    assert "CaloChallenge: showers + incident_energies" in str(err.value)
    assert "jets: particles + jets" in str(err.value)


def test_read_arrays_refuses_values_beyond_float32(tmp_path):
    np.save(tmp_path / "big.npy", np.array([[1.0], [1e300]]))
    with pytest.raises(DataError, match=r"big\.npy: x has values beyond the float32 range"):
        read_arrays(tmp_path / "big.npy")


# --- bad input --------------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    """Keep the first half of a valid file's bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_INPUTS = {
    # name: (file name, how to write it (None: leave it missing), load's keys, needle)
    "missing file": ("absent.h5", None, None, "no such file"),
    "empty file": ("empty.npz", lambda p: p.write_bytes(b""), None, "empty file"),
    "text named .h5": ("notes.h5", lambda p: p.write_text("pt,eta\n1,2\n"), None, "cannot read"),
    "truncated h5": (
        "cut.h5",
        lambda p: _truncate(_h5(p, x=np.ones((1000, 4)))),
        None,
        "cannot read",
    ),
    "garbage root": (
        "junk.root",
        lambda p: p.write_bytes(bytes(range(256)) * 16),
        None,
        "cannot read",
    ),
    "truncated root": ("cut.root", lambda p: _truncate(_root(p)), None, "cannot read"),
    "garbage parquet": ("junk.parquet", lambda p: p.write_bytes(b"PAR1" * 9), None, "cannot read"),
    "nan": (
        "nan.h5",
        lambda p: _h5(p, x=np.where(np.arange(10)[:, None] == 3, np.nan, np.ones((10, 2)))),
        None,
        r"x holds NaN or inf \(first at row 3: nan\)",
    ),
    "inf": (
        "inf.npz",
        lambda p: np.savez(
            p, x=np.ones((4, 1)), cond=np.array([[0, 1], [2, 3], [4, -np.inf], [5, 6]])
        ),
        None,
        r"cond holds NaN or inf \(first at row 2: -inf\)",
    ),
    "string dtype": (
        "names.npz",
        lambda p: np.savez(p, x=np.array(["a", "b"])),
        None,
        "x has dtype <U1, expected numbers",
    ),
    "zero rows": ("none.npy", lambda p: np.save(p, np.zeros((0, 3))), None, r"shape \(0, 3\)"),
    "row counts": (
        "rows.npz",
        lambda p: np.savez(p, x=np.ones((5, 2)), cond=np.ones((4, 1))),
        None,
        r"disagree in their number of rows \(x 5, cond 4\)",
    ),
    "missing key": (
        "keys.h5",
        lambda p: _h5(p, x=P4, cond=PT),
        ["showers"],
        r"no array named 'showers' \(found: cond, x\)",
    ),
    "jagged branch": (
        "jag.root",
        lambda p: _root(p, x=ak.Array([[1.0] * (i % 3) for i in range(N)])),
        None,
        "x is jagged",
    ),
    "unknown suffix": ("table.csv", lambda p: p.write_text("1,2\n"), None, "unsupported format"),
}


@pytest.mark.parametrize(("name", "write", "keys", "needle"), BAD_INPUTS.values(), ids=BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_file(tmp_path, name, write, keys, needle):
    path = tmp_path / name
    if write is not None:
        write(path)
    calls = [lambda: load(path, keys)]
    if keys is None:  # read_arrays, which takes no keys, must fail the same way
        calls.append(lambda: read_arrays(path))
    for call in calls:
        with pytest.raises(DataError) as err:
            call()
        message = str(err.value)
        assert str(path) in message
        assert "\n" not in message
        assert err.match(needle)


# --- property ---------------------------------------------------------------------------------

finite_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
    elements={"allow_nan": False, "allow_infinity": False},
)


@settings(max_examples=40, deadline=None)
@given(
    arrays=st.lists(finite_arrays, min_size=1, max_size=3), suffix=st.sampled_from([".npz", ".h5"])
)
def test_finite_arrays_round_trip_exactly(arrays, suffix):
    n_rows = arrays[0].shape[0]
    named = {f"a{i}": arr for i, arr in enumerate(arrays) if arr.shape[0] == n_rows}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        if suffix == ".npz":
            np.savez(path, **named)
        else:
            _h5(path, **named)
        loaded = load(path)
    assert sorted(loaded) == sorted(named)
    for name, arr in named.items():
        assert loaded[name].dtype == arr.dtype
        np.testing.assert_array_equal(loaded[name], arr)


def test_training_reads_named_root_branches_as_features(tmp_path):
    import uproot

    from physgan import api
    from physgan.errors import ConfigError

    rng = np.random.default_rng(77)
    pt, eta = rng.exponential(30.0, 400), rng.normal(0.0, 1.0, 400)
    path = tmp_path / "events.root"
    with uproot.recreate(path) as fh:
        fh.mktree("events", {"pt": np.float64, "eta": np.float64, "n": np.int32})
        fh["events"].extend({"pt": pt, "eta": eta, "n": np.arange(400, dtype=np.int32)})
    data = {"path": f"{path}:events", "columns": ["eta", "pt"]}
    config = {
        "data": data,
        "model": {
            "generator": {"hidden": 8, "depth": 1},
            "discriminator": {"hidden": 8, "depth": 1},
        },
        "train": {"steps": 3, "batch_size": 16, "log_every": 1, "checkpoint_every": 3},
    }
    api.train(config, tmp_path / "run")
    x = api.sample(tmp_path / "run", 5)
    assert x.shape == (5, 2)
    with pytest.raises(ConfigError, match=r"data\.columns"):
        api.train({**config, "data": {"name": "grid25", "columns": ["pt"]}}, tmp_path / "r2")


def test_shard_links_out_of_the_named_directory_are_refused(tmp_path):
    from physgan.data.io import load

    outside = tmp_path / "secret.npy"
    np.save(outside, np.ones((3, 2), dtype=np.float32))
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "a.npy", np.zeros((3, 2), dtype=np.float32))
    (shards / "b.npy").symlink_to(outside)
    with pytest.raises(DataError, match=r"b\.npy: a link out of"):
        load(shards)
    (shards / "b.npy").unlink()
    (shards / "b.npy").symlink_to(shards / "a.npy")  # a link inside is fine
    assert load(shards)["x"].shape == (6, 2)


def test_devices_and_fifos_are_refused_not_read(tmp_path):
    import os

    from physgan.data.io import load

    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        load(fifo)  # would block forever if opened
    with pytest.raises(DataError, match="not a regular file"):
        load("/dev/zero")
