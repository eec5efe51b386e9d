"""Generated samples written in the simulator's layout, as HDF5, NumPy, ROOT and Parquet files
that physgan and the formats' own libraries read back."""

import itertools
import json
import sys

import h5py
import numpy as np
import pytest

from physgan import api
from physgan.cli import main
from physgan.data.io import load, read_arrays
from physgan.data.jets import ARRAY_ATTRS
from physgan.data.writers import Provenance, generated_jets, write_samples
from physgan.errors import DataError, MissingExtraError
from physgan.version import __version__
from test_conditioning import config, toy_jets

N = 5
# Three jets [eta_rel, phi_rel, pt_rel, mask]: three particles, one, none; zero-padded to N.
CLOUD = np.zeros((3, N, 4), np.float32)
CLOUD[0, :3] = [[0.1, 0.2, 0.5, 1.0], [-0.2, 0.1, 0.3, 1.0], [0.05, -0.3, 0.2, 1.0]]
CLOUD[1, :1] = [[0.0, 0.0, 1.0, 1.0]]
PT = np.array([1000.0, 500.0, 800.0])  # GeV
ETA = np.array([0.5, -1.0, 2.0])
MADE_BY = Provenance(run="runs/gluon", step=1200, seed=7, data="jets-gluon")
NEEDS = {".root": ["uproot", "awkward"], ".parquet": ["pyarrow", "awkward"]}


def _mass(jet: np.ndarray, pt_gev: float) -> float:
    """Invariant mass (GeV) of a jet's massless particles, summed over pairs:
    m^2 = sum_{i<j} 2 pT_i pT_j (cosh(eta_i - eta_j) - cos(phi_i - phi_j))."""
    real = jet[jet[:, 3] > 0.5]
    m2 = sum(
        2 * (a[2] * pt_gev) * (b[2] * pt_gev) * (np.cosh(a[0] - b[0]) - np.cos(a[1] - b[1]))
        for a, b in itertools.combinations(real.astype(float), 2)
    )
    return float(np.sqrt(m2))


EXPECTED_JETS = np.array(
    [
        [pt, eta, _mass(jet, pt), (jet[:, 3] > 0.5).sum()]
        for jet, pt, eta in zip(CLOUD, PT, ETA, strict=True)
    ]
)


def _write(path, **kwargs):
    for module in NEEDS.get(path.suffix, []):
        pytest.importorskip(module)
    cond = np.stack([PT, ETA], axis=1)
    return write_samples(
        path, CLOUD, cond=cond, cond_names=["pt", "eta"], made_by=MADE_BY, **kwargs
    )


def test_jet_features_of_a_generated_cloud_by_hand():
    np.testing.assert_allclose(generated_jets(CLOUD, PT, ETA), EXPECTED_JETS, rtol=1e-5)
    assert EXPECTED_JETS[0, 2] > 0
    assert EXPECTED_JETS[1:, 2].tolist() == [0.0, 0.0]


def test_unknown_pt_and_eta_are_nan_with_the_reason(tmp_path):
    path = write_samples(
        tmp_path / "j.h5", CLOUD, cond={"n_particles": 3.0}, cond_names=["n_particles"]
    )
    with h5py.File(path) as fh:
        jets = fh["jets"][:]
        unknown = fh["jets"].attrs["unknown"]
    assert np.isnan(jets[:, :3]).all()  # pt, eta and mass (relative mass times pt)
    np.testing.assert_array_equal(jets[:, 3], [3, 1, 0])
    assert "not conditioned on pt" in unknown
    assert "not conditioned on eta" in unknown
    # Conditioned on pt, but no rows given.
    path = write_samples(tmp_path / "k.h5", CLOUD, cond_names=["pt"])
    with h5py.File(path) as fh:
        assert "pt and mass NaN: no condition rows were given" in (fh["jets"].attrs["unknown"])


def test_one_value_per_condition_is_every_jet_s(tmp_path):
    path = write_samples(tmp_path / "j.h5", CLOUD, cond={"pt": 700.0, "eta": 0.5})
    jets = load(path, ["jets"])["jets"]
    np.testing.assert_allclose(jets[:, 0], 700.0)
    np.testing.assert_allclose(jets[0, 2], _mass(CLOUD[0], 700.0), rtol=1e-5)


@pytest.mark.parametrize("suffix", [".h5", ".hdf5", ".root", ".parquet", ".npy"])
def test_round_trip_through_physgan_readers(tmp_path, suffix):
    path = _write(tmp_path / f"jets{suffix}")
    x, cond = read_arrays(path)
    np.testing.assert_array_equal(x, CLOUD)  # zero padding, mask 0/1, N kept
    assert cond is None
    if suffix != ".npy":
        np.testing.assert_allclose(load(path, ["jets"])["jets"], EXPECTED_JETS, rtol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_hdf5_has_the_simulator_s_attributes(tmp_path):
    path = _write(tmp_path / "jets.h5")
    with h5py.File(path) as fh:
        assert sorted(fh) == ["jets", "particles"]
        assert fh["particles"].dtype == fh["jets"].dtype == np.float32
        assert list(fh["particles"].attrs["features"]) == ARRAY_ATTRS["particles"]["features"]
        assert list(fh["jets"].attrs["features"]) == ["pt", "eta", "mass", "n_particles"]
        assert list(fh["jets"].attrs["units"]) == ["GeV", "", "GeV", ""]
        assert "unknown" not in fh["jets"].attrs
        attrs = dict(fh.attrs)
    assert attrs == {
        "generator": f"physgan {__version__}",
        "physgan": __version__,
        "kind": "particles",
        "process": "gluon",
        "run": "runs/gluon",
        "step": 1200,
        "seed": 7,
        "training_data": "jets-gluon",
    }


def test_root_reads_back_in_uproot(tmp_path):
    uproot = pytest.importorskip("uproot")
    path = _write(tmp_path / "jets.root")
    with uproot.open(path) as fh:
        tree = fh["Jets"]
        assert tree.keys() == [
            "nParticle",
            "Particle_eta",
            "Particle_phi",
            "Particle_pt",
            "Jet_pt",
            "Jet_eta",
            "Jet_mass",
            "Jet_nParticle",
        ]
        assert "relative units" in tree.title
        arrays = tree.arrays(library="np")
        meta = json.loads(str(fh["physgan"]))
    np.testing.assert_array_equal(arrays["nParticle"], [3, 1, 0])
    for i, name in enumerate(["Particle_eta", "Particle_phi", "Particle_pt"]):
        for jet, values in zip(CLOUD, arrays[name], strict=True):
            np.testing.assert_array_equal(values, jet[jet[:, 3] > 0.5, i])
    for i, name in enumerate(["Jet_pt", "Jet_eta", "Jet_mass", "Jet_nParticle"]):
        np.testing.assert_allclose(arrays[name], EXPECTED_JETS[:, i], rtol=1e-5)
    assert meta["max_particles"] == N
    assert meta["generator"] == f"physgan {__version__}"
    assert (meta["run"], meta["step"], meta["seed"]) == ("runs/gluon", 1200, 7)


def test_parquet_reads_back_in_pyarrow_and_awkward(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    ak = pytest.importorskip("awkward")
    path = _write(tmp_path / "jets.parquet")
    table = pq.read_table(path)
    assert table.num_rows == 3
    pt_lists = table.column("Particle_pt").to_pylist()
    assert [len(values) for values in pt_lists] == [3, 1, 0]
    np.testing.assert_allclose(pt_lists[0], [0.5, 0.3, 0.2], rtol=1e-6)
    jets = ak.from_parquet(path)
    np.testing.assert_allclose(ak.to_numpy(jets["Jet_mass"]), EXPECTED_JETS[:, 2], rtol=1e-5)
    meta = json.loads(table.schema.metadata[b"physgan"])
    assert meta["max_particles"] == N
    assert meta["kind"] == "particles"


@pytest.mark.parametrize("suffix", [".h5", ".root", ".parquet"])
@pytest.mark.parametrize("shape", [(4, 3), (4, 1, 6, 6)], ids=["vectors", "images"])
def test_other_samples_round_trip(tmp_path, suffix, shape):
    for module in NEEDS.get(suffix, []):
        pytest.importorskip(module)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    path = write_samples(tmp_path / f"s{suffix}", x, made_by=MADE_BY)
    back, cond = read_arrays(path)
    np.testing.assert_array_equal(back, x)
    assert cond is None
    if suffix == ".h5":
        with h5py.File(path) as fh:
            assert list(fh) == (["images"] if len(shape) == 4 else ["x"])


def test_npy_holds_the_array_alone(tmp_path):
    path = write_samples(tmp_path / "jets.npy", CLOUD, made_by=MADE_BY)
    np.testing.assert_array_equal(np.load(path), CLOUD)


def test_simulated_and_sampled_files_are_read_by_the_same_code(tmp_path):
    pytest.importorskip("pythia8mc")
    from physgan.data.jetgen import generate_jets

    simulated = generate_jets("gluon", 10, tmp_path / "sim.h5", n_particles=N, seed=1)
    sampled = _write(tmp_path / "gen.h5")
    files = {}
    for path in (simulated, sampled):
        x, cond = read_arrays(path)
        arrays = load(path)
        assert x.shape[1:] == (N, 4)
        assert cond is None
        assert {name: arr.dtype for name, arr in arrays.items()} == {
            "jets": np.float32,
            "particles": np.float32,
        }
        with h5py.File(path) as fh:
            files[path] = {name: dict(fh[name].attrs) for name in fh} | {"file": dict(fh.attrs)}
    sim, gen = files[simulated], files[sampled]
    for name in ("particles", "jets"):
        for key, value in sim[name].items():
            np.testing.assert_array_equal(gen[name][key], value)
    assert sim["file"]["kind"] == gen["file"]["kind"] == "particles"
    assert sim["file"]["process"] == gen["file"]["process"] == "gluon"


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error", "needle"),
    [
        ("jets.csv", DataError, "unsupported output format; use one of .h5, .hdf5, .npy, "),
        ("missing/jets.h5", DataError, "does not exist"),
    ],
)
def test_bad_outputs_are_one_line_and_leave_no_file(tmp_path, name, error, needle):
    with pytest.raises(error, match=needle) as info:
        write_samples(tmp_path / name, CLOUD)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("suffix", "module", "message"),
    [
        (".root", "uproot", "writing ROOT files needs uproot"),
        (".parquet", "pyarrow", "writing Parquet files needs pyarrow"),
        (".parquet", "awkward", "writing Parquet files needs awkward"),
    ],
)
def test_missing_extra_names_it_and_leaves_no_file(tmp_path, monkeypatch, suffix, module, message):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError, match=rf"^{message}: pip install 'physgan\[hep\]'$"):
        write_samples(tmp_path / f"jets{suffix}", CLOUD)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def full_disk(fh, *args, **kwargs):
        fh.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    with pytest.raises(DataError, match=r"jets.npy: cannot write \(No space left on device\)$"):
        write_samples(tmp_path / "jets.npy", CLOUD)
    assert list(tmp_path.iterdir()) == []


# --- from a trained run -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("writers")
    data = toy_jets(root / "toy.h5", n=600)
    return api.train(config(data, steps=2), root / "run").run_dir, data


def test_sample_writes_its_conditions_and_provenance(trained, tmp_path):
    run, data = trained
    cond = np.stack([np.linspace(600.0, 1400.0, 64), np.full(64, 4.0)], axis=1)
    x = api.sample(run, 64, seed=3, cond=cond, out=tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5") as fh:
        jets, attrs = fh["jets"][:], dict(fh.attrs)
        np.testing.assert_array_equal(fh["particles"][:], x)
    np.testing.assert_allclose(jets[:, 0], cond[:, 0])
    np.testing.assert_array_equal(jets[:, 3], 4)
    assert (jets[:, 2] > 0).all()
    assert np.isnan(jets[:, 1]).all()
    assert attrs["run"] == str(run.resolve())
    assert (attrs["step"], attrs["seed"], attrs["training_data"]) == (2, 3, str(data))


def test_cli_samples_to_root_and_evaluates_against_a_sampled_file(trained, tmp_path, capsys):
    uproot = pytest.importorskip("uproot")
    run, _ = trained
    out = tmp_path / "s.root"
    argv = ["sample", str(run), "-n", "40", "-o", str(out), "--cond", "pt=900", "--cond"]
    assert main([*argv, "n_particles=4"]) == 0
    with uproot.open(out) as fh:
        tree = fh["Jets"]
        np.testing.assert_array_equal(tree["Jet_pt"].array(library="np"), 900.0)
        np.testing.assert_array_equal(tree["nParticle"].array(library="np"), 4)
    reference = tmp_path / "reference.h5"
    api.sample(run, 128, seed=1, out=reference)
    capsys.readouterr()
    argv = ["evaluate", str(run), "-n", "64", "--reference", str(reference)]
    assert main([*argv, "--out", str(tmp_path / "eval")]) == 0
    assert '"w1m"' in capsys.readouterr().out


def test_a_sampled_file_is_training_data(trained, tmp_path):
    run, _ = trained
    sampled = api.sample(run, 200, seed=2, out=tmp_path / "s.h5")
    cfg = config(tmp_path / "s.h5", steps=2)
    del cfg["data"]["condition_on"]
    result = api.train(cfg, tmp_path / "retrained")
    assert result.run_dir.is_dir()
    assert sampled.shape == (200, 8, 4)


def test_a_sampled_file_reads_whole_and_trains_on_its_known_conditions(trained, tmp_path):
    run, _ = trained
    path = tmp_path / "s.h5"
    api.sample(run, 200, seed=4, out=path)
    arrays = load(path)  # every array, the unknown eta (NaN) included
    assert set(arrays) >= {"particles", "jets"}
    assert np.isnan(arrays["jets"][:, 1]).all()
    assert np.isfinite(arrays["jets"][:, [0, 2, 3]]).all()
    assert api.train(config(path, steps=2), tmp_path / "on-pt").step == 2
    with pytest.raises(DataError, match=r"jets: eta is unknown \(NaN\) from row 0 on"):
        api.train(config(path, steps=2, condition_on=("eta",)), tmp_path / "on-eta")
    with h5py.File(path, "r+") as fh:
        fh["jets"][5, 0] = np.inf
    with pytest.raises(DataError, match=r"jets holds inf \(first at row 5: inf\)"):
        load(path)
