"""Bad input never crashes without a reason, and loading never runs code.

The corpus in ``tests/data/bad`` (each file and its defect in its README.md; written once by
``python tests/test_bad_inputs.py``) goes through every command that reads data, a config or a
run directory. Each refusal is exit code 2 and one line on stderr naming the file (or the config
key) and the problem, and leaves no output behind, whole or half written. Property tests feed
the config schema and the readers random input.
"""

from __future__ import annotations

import ast
import json
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from physgan.cli import main
from physgan.config import Config, parse_config
from physgan.data.io import load, read_arrays
from physgan.errors import ConfigError, DataError
from physgan.losses import OBJECTIVES

BAD = Path(__file__).parent / "data" / "bad"
SRC = Path(__file__).parent.parent / "src" / "physgan"
OLD_VERSION = "0.0.1"  # old_version_run's meta.json says it was written by this version
PICKLE_MARKER = "physgan-pickle-marker"  # object.npy's payload would create it in the cwd
YAML_MARKER = "physgan-yaml-marker"  # python_tag.yaml's payload would create it in the cwd

# A GAN that trains 2 steps in a fraction of a second (the module's run and old_version_run).
TINY = {
    "seed": 1,
    "data": {"name": "ring8", "n_train": 2_000},
    "model": {
        "generator": {"kind": "mlp", "latent_dim": 2, "hidden": 8, "depth": 1},
        "discriminator": {"kind": "mlp", "hidden": 8, "depth": 1},
    },
    "train": {
        "steps": 2,
        "batch_size": 16,
        "log_every": 1,
        "checkpoint_every": 2,
        "eval_samples": 32,
    },
}


# --- the corpus --------------------------------------------------------------------------------


class _Touch:
    """Pickles as a call of Path.touch: unpickling it creates ``name`` (relative: in the cwd)."""

    def __init__(self, name: str | Path) -> None:
        self.path = Path(name)

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _cut(path: Path) -> None:
    """Keep the first half of a valid file's bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


CONFIG_TEXTS = {
    "unknown_key.yaml": "train:\n  stepz: 3  # a typo of steps\n",
    "wrong_type.yaml": "train:\n  steps: many\n",
    "negative_lr.yaml": "train:\n  lr_g: -0.001\n",
    "inf_lr.yaml": "train:\n  lr_d: .inf\n",
    "not_yaml.yaml": "train: [1, 2\nseed: {\n",
    "list.yaml": "- train\n- seed\n",
    "python_tag.yaml": f'seed: !!python/object/apply:os.system ["touch {YAML_MARKER}"]\n',
    "missing_data.yaml": "data:\n  path: does-not-exist.npy\n",
}


def write_corpus(bad: Path = BAD) -> None:
    """Write every corpus file (once: they are committed; see tests/data/bad/README.md)."""
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq
    import uproot

    from physgan import api

    bad.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(10)
    x = rng.normal(size=(40, 2)).astype(np.float32)
    nan = x.copy()
    nan[7, 0] = np.nan
    np.save(bad / "nan.npy", nan)
    inf = x.astype(np.float64)
    inf[12, 1] = np.inf
    np.savez(bad / "inf.npz", x=inf)
    cond = np.ones((40, 1))
    cond[3, 0] = -np.inf
    with h5py.File(bad / "inf_cond.h5", "w") as fh:
        fh["x"], fh["cond"] = x, cond
    np.save(bad / "wrong_shape_1d.npy", x[:, 0])
    np.save(bad / "wrong_shape_3d.npy", rng.normal(size=(40, 3, 5)).astype(np.float32))
    np.savez(bad / "wrong_shape_cond.npz", x=x, cond=np.ones((40, 2, 2), np.float32))
    np.savez(bad / "rows_disagree.npz", x=x, cond=np.ones((39, 1), np.float32))
    np.save(bad / "zero_features.npy", np.zeros((40, 0), np.float32))
    np.save(bad / "complex.npy", x.astype(np.complex64))
    np.save(bad / "strings.npy", np.array([["pt", "eta"]] * 40))
    payload = np.empty((40, 2), dtype=object)
    payload[:] = _Touch(PICKLE_MARKER)
    np.save(bad / "object.npy", payload, allow_pickle=True)
    (bad / "empty.npy").write_bytes(b"")
    np.save(bad / "truncated.npy", x)
    _cut(bad / "truncated.npy")
    with h5py.File(bad / "empty.h5", "w"):
        pass
    with h5py.File(bad / "empty_dataset.h5", "w") as fh:
        fh.create_dataset("x", data=h5py.Empty("f4"))
    with h5py.File(bad / "truncated.h5", "w") as fh:
        fh["x"] = rng.normal(size=(200, 2))
    _cut(bad / "truncated.h5")
    (bad / "text.h5").write_text("pt,eta\n41.5,0.3\n")
    with uproot.recreate(bad / "no_branch.root") as fh:
        fh.mktree("events", {"pt": np.float64, "eta": np.float64})
        fh["events"].extend({"pt": rng.exponential(30.0, 40), "eta": rng.normal(size=40)})
    pairs = pa.list_(pa.float32(), 2)
    pq.write_table(pa.table({"x": pa.array([], pairs)}), bad / "empty_rows.parquet")
    pq.write_table(pa.table({"x": pa.array(nan.tolist(), pairs)}), bad / "nan.parquet")
    for name, text in CONFIG_TEXTS.items():
        (bad / name).write_text(text)
    (bad / "binary.yaml").write_bytes(b"\x89HDF\r\n\x1a\n\xff\xfe\x00\x01")
    (bad / "not_a_run").mkdir(exist_ok=True)
    (bad / "not_a_run" / "notes.txt").write_text("A directory, but not a run directory.\n")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        api.train(TINY, run)
        old = bad / "old_version_run"
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir()
        for name in ("config.yaml", "transform.json", "checkpoint.safetensors", "metrics.jsonl"):
            shutil.copy(run / name, old / name)
        meta = json.loads((run / "meta.json").read_text())
        (old / "meta.json").write_text(json.dumps({**meta, "physgan_version": OLD_VERSION}))


def test_corpus_is_listed_in_its_readme_and_small():
    readme = (BAD / "README.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    present = {p.name for p in BAD.iterdir() if p.name != "README.md"}
    assert listed == present
    assert sum(p.stat().st_size for p in BAD.rglob("*") if p.is_file()) < 200_000


def test_write_corpus_writes_the_committed_files(tmp_path):
    fresh = tmp_path / "bad"
    write_corpus(fresh)
    names = {str(p.relative_to(fresh)) for p in fresh.rglob("*")}
    assert names == {str(p.relative_to(BAD)) for p in BAD.rglob("*")} - {"README.md"}
    # Byte for byte where the format has no timestamps (old_version_run's files follow the
    # current schema and weights: their names suffice).
    for path in fresh.iterdir():
        if path.suffix in (".npy", ".yaml"):
            assert path.read_bytes() == (BAD / path.relative_to(fresh)).read_bytes(), path.name


# --- helpers -----------------------------------------------------------------------------------


def _cli(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, names: str | Path, needle: str) -> None:
    """Exit 2 and exactly one line: ``physgan: error: ...`` naming ``names``, matching needle."""
    assert code == 2, err
    assert err.endswith("\n")
    assert len(err.splitlines()) == 1, err
    assert err.startswith("physgan: error: "), err
    assert str(names) in err
    assert re.search(needle, err), err


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes ({} for a missing directory)."""
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A tiny trained run; tests copy it before changing it."""
    from physgan import api

    run = tmp_path_factory.mktemp("good") / "run"
    api.train(TINY, run)
    return run


@pytest.fixture
def tiny_yaml(tmp_path) -> Path:
    return _write_config(tmp_path / "tiny.yaml", TINY)


# --- data files: train --set data.path=FILE, evaluate --reference FILE -------------------------

# file: what the one line says (a regex); every one also names the file.
DATA = {
    "nan.npy": r"x holds NaN or inf \(first at row 7: nan\)",
    "inf.npz": r"x holds NaN or inf \(first at row 12: inf\)",
    "inf_cond.h5": r"cond holds NaN or inf \(first at row 3: -inf\)",
    "wrong_shape_1d.npy": r"x has shape \(40,\), expected \(n_samples, \.\.\.\)",
    "wrong_shape_cond.npz": r"cond has shape \(40, 2, 2\), expected \(40, c\)",
    "rows_disagree.npz": r"disagree in their number of rows \(x 40, cond 39\)",
    "zero_features.npy": r"x has shape \(40, 0\), no values in its rows",
    "complex.npy": r"x has dtype complex64, expected numbers",
    "strings.npy": r"x has dtype <U3, expected numbers",
    "object.npy": r"cannot read \(.*Python objects",
    "empty.npy": r"empty file \(0 bytes\)",
    "truncated.npy": r"cannot read \(",
    "empty.h5": r"no known layout in nothing",
    "empty_dataset.h5": r"x is an empty dataset",
    "truncated.h5": r"cannot read \(",
    "text.h5": r"cannot read \(",
    "no_branch.root": r"no known layout in pt, eta",
    "empty_rows.parquet": r"x has shape \(0,",
    "nan.parquet": r"x holds NaN or inf \(first at row 7: nan\)",
    "absent.npy": r"no such file",  # not in the corpus: a missing file
}


def _data_path(name: str) -> Path:
    path = BAD / name
    assert path.is_file() == (name != "absent.npy")
    return path


@pytest.mark.parametrize(("name", "needle"), DATA.items(), ids=list(DATA))
def test_bad_data_through_train(tiny_yaml, tmp_path, capsys, monkeypatch, name, needle):
    monkeypatch.chdir(tmp_path)  # object.npy's payload, were it to run, would land here
    path, out = _data_path(name), tmp_path / "out"
    data = ["--set", f"data.path={path}"]  # replaces the config's data.name
    code, err = _cli(capsys, "train", tiny_yaml, "--out", out, "--no-progress", *data)
    _assert_refused(code, err, path, needle)
    assert not out.exists()  # a refused fresh run leaves no directory behind
    assert not (tmp_path / PICKLE_MARKER).exists()


@pytest.mark.parametrize(("name", "needle"), DATA.items(), ids=list(DATA))
def test_bad_data_through_evaluate(good_run, tmp_path, capsys, monkeypatch, name, needle):
    monkeypatch.chdir(tmp_path)
    path, before = _data_path(name), _snapshot(good_run)
    code, err = _cli(capsys, "evaluate", good_run, "--reference", path, "-n", "50")
    _assert_refused(code, err, path, needle)
    assert _snapshot(good_run) == before  # no metrics.json, no report.html
    assert not (tmp_path / PICKLE_MARKER).exists()


def test_reference_of_another_shape_is_refused_by_evaluate(good_run, capsys):
    path, before = BAD / "wrong_shape_3d.npy", _snapshot(good_run)
    code, err = _cli(capsys, "evaluate", good_run, "--reference", path, "-n", "50")
    _assert_refused(code, err, path, r"samples of shape \(3, 5\), the run's data have \(2,\)")
    assert _snapshot(good_run) == before


def test_root_file_without_the_branch_asked_for(tiny_yaml, tmp_path, capsys):
    path, out = BAD / "no_branch.root", tmp_path / "out"
    data = ["--set", f"data.path={path}:events"]
    columns = ["--set", "data.columns=[pt, mass]"]
    code, err = _cli(capsys, "train", tiny_yaml, "--out", out, *data, *columns)
    _assert_refused(code, err, path, r"no array named 'mass' \(found: pt, eta\)")
    assert _snapshot(out) == {}


def test_object_array_payload_is_live_but_never_loaded(tmp_path, monkeypatch):
    """object.npy really holds code (allow_pickle=True runs it); physgan refuses to unpickle."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"object\.npy: cannot read"):
        load(BAD / "object.npy")
    assert not (tmp_path / PICKLE_MARKER).exists()
    np.load(BAD / "object.npy", allow_pickle=True)  # the control: unpickling runs the payload
    assert (tmp_path / PICKLE_MARKER).exists()


# --- configs: train CONFIG ---------------------------------------------------------------------

CONFIGS = {
    "unknown_key.yaml": r"train\.stepz: unknown key",
    "wrong_type.yaml": r"train\.steps: Input should be a valid integer.*'many'",
    "negative_lr.yaml": r"train\.lr_g: Input should be greater than 0 \(got -0\.001\)",
    "inf_lr.yaml": r"train\.lr_d: Input should be a finite number \(got inf\)",
    "not_yaml.yaml": r"not valid YAML at line 2 \(expected ',' or '\]', but got ':'\)",
    "list.yaml": r"expected a mapping at the top level",
    "binary.yaml": r"not UTF-8 text",
    "python_tag.yaml": r"tag 'tag:yaml\.org,2002:python/object/apply:os\.system' at line 1 refused",
    "missing_data.yaml": r"does-not-exist\.npy: no such file",
    "absent.yaml": r"no such file; shipped configs: ",  # not in the corpus
}


@pytest.mark.parametrize(("name", "needle"), CONFIGS.items(), ids=list(CONFIGS))
def test_bad_config_through_train(tmp_path, capsys, monkeypatch, name, needle):
    monkeypatch.chdir(tmp_path)  # python_tag.yaml's payload, were it to run, would land here
    path, out = BAD / name, tmp_path / "out"
    assert path.is_file() == (name != "absent.yaml")
    code, err = _cli(capsys, "train", path, "--out", out, "--no-progress")
    # The config's file is named, or (missing_data.yaml) the data file it points to.
    _assert_refused(
        code, err, "does-not-exist.npy" if name == "missing_data.yaml" else path, needle
    )
    assert _snapshot(out) == {}
    assert not (tmp_path / YAML_MARKER).exists()


def test_python_tag_is_live_but_the_safe_loader_refuses_it(
    tiny_yaml, tmp_path, monkeypatch, capsys
):
    """python_tag.yaml really holds code (yaml.unsafe_load runs it); physgan never runs it."""
    monkeypatch.chdir(tmp_path)
    text = (BAD / "python_tag.yaml").read_text()
    code, err = _cli(
        capsys, "train", tiny_yaml, "--out", "out", "--set", text.replace(": ", "=", 1)
    )
    _assert_refused(code, err, "--set 'seed=!!python", "value is not valid YAML")
    assert not (tmp_path / YAML_MARKER).exists()
    yaml.unsafe_load(text)  # the control: an unsafe loader runs the payload
    assert (tmp_path / YAML_MARKER).exists()


# --- run directories: sample, evaluate, compare, train --resume -------------------------------


def _copy_run(good_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    return run


def _edit_checkpoint(run: Path, edit) -> None:
    from safetensors import safe_open

    path = run / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata=metadata)


def _set_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _nan_weight(tensors: dict) -> None:
    tensors["generator.head.weight"][0, 0] = float("nan")


# case: (how to make it from a copy of the good run, what names it, what the line says)
RUNS = {
    "old version": (
        lambda run: shutil.copytree(BAD / "old_version_run", run),
        "{run}",
        rf"written by physgan {OLD_VERSION}, this is ",
    ),
    "missing": (lambda run: None, "{run}", r"not a run directory \(no config\.yaml\)"),
    "not a run": (
        lambda run: shutil.copytree(BAD / "not_a_run", run),
        "{run}",
        r"not a run directory \(no config\.yaml\)",
    ),
    "no checkpoint": (
        lambda run: (run / "checkpoint.safetensors").unlink(),
        "{run}",
        r"no checkpoint yet \(train it first\)",
    ),
    "truncated checkpoint": (
        lambda run: _cut(run / "checkpoint.safetensors"),
        "{run}/checkpoint.safetensors",
        r"not a safetensors file",
    ),
    "torch.save checkpoint": (
        lambda run: torch.save({"w": torch.zeros(2)}, run / "checkpoint.safetensors"),
        "{run}/checkpoint.safetensors",
        r"a zip archive \(torch\.save\), refused: loading it could run code",
    ),
    "checkpoint without physgan metadata": (
        lambda run: save_file({"w": torch.zeros(2)}, str(run / "checkpoint.safetensors")),
        "{run}/checkpoint.safetensors",
        r"no physgan metadata",
    ),
    "checkpoint holding NaN": (
        lambda run: _edit_checkpoint(run, _nan_weight),
        "{run}/checkpoint.safetensors",
        r"generator\.head\.weight holds NaN or inf",
    ),
    "checkpoint of another shape": (
        lambda run: _edit_checkpoint(
            run, lambda t: t.update({"generator.head.weight": torch.zeros(2, 3)})
        ),
        "{run}/checkpoint.safetensors",
        r"generator\.head\.weight has shape \(2, 3\), the model \(2, 8\)",
    ),
    "meta.json not an object": (
        lambda run: (run / "meta.json").write_text("[1, 2]"),
        "{run}/meta.json",
        r"expected a JSON object, got list",
    ),
    "meta.json not JSON": (
        lambda run: (run / "meta.json").write_text('{"physgan_version": '),
        "{run}/meta.json",
        r"cannot read \(Expecting value",
    ),
    "meta.json without sample_shape": (
        lambda run: _set_json(run / "meta.json", sample_shape=None),
        "{run}/meta.json",
        r"sample_shape must be a list of positive integers",
    ),
    "config.yaml with an unknown key": (
        lambda run: (run / "config.yaml").write_text(
            (run / "config.yaml").read_text() + "colour: blue\n"
        ),
        "{run}/config.yaml",
        r"colour: unknown key",
    ),
    "config.yaml not YAML": (
        lambda run: (run / "config.yaml").write_text("seed: [\n"),
        "{run}/config.yaml",
        r"not valid YAML",
    ),
    "transform.json of another width": (
        lambda run: _set_json(run / "transform.json", mean=[0.0], std=[1.0]),
        "{run}/transform.json",
        r"1 features, but the data have 2",
    ),
}
# --resume on a missing directory, or on one killed before its first checkpoint, starts the run
# (again): that is not bad input.
RESUMABLE = [case for case in RUNS if case not in ("missing", "no checkpoint")]


def _bad_run(case: str, good_run: Path, tmp_path: Path) -> tuple[Path, str, str]:
    make, names, needle = RUNS[case]
    run = tmp_path / "run"
    if case not in ("old version", "missing", "not a run"):
        _copy_run(good_run, tmp_path)
    make(run)
    return run, names.format(run=run), needle


@pytest.mark.parametrize("case", RUNS)
def test_bad_run_through_sample(good_run, tmp_path, capsys, case):
    run, names, needle = _bad_run(case, good_run, tmp_path)
    before, out = _snapshot(run), tmp_path / "samples"
    out.mkdir()
    code, err = _cli(capsys, "sample", run, "-n", "5", "-o", out / "x.npy")
    _assert_refused(code, err, names, needle)
    assert list(out.iterdir()) == []  # neither x.npy nor a temporary file
    assert _snapshot(run) == before


@pytest.mark.parametrize("case", RUNS)
def test_bad_run_through_evaluate(good_run, tmp_path, capsys, case):
    run, names, needle = _bad_run(case, good_run, tmp_path)
    before = _snapshot(run)
    code, err = _cli(capsys, "evaluate", run, "-n", "50")
    _assert_refused(code, err, names, needle)
    assert _snapshot(run) == before  # no metrics.json, no report.html


@pytest.mark.parametrize("case", RUNS)
def test_bad_run_through_compare(good_run, tmp_path, capsys, case):
    run, names, needle = _bad_run(case, good_run, tmp_path)
    before, out = _snapshot(run), tmp_path / "cmp"
    code, err = _cli(capsys, "compare", good_run, run, "--out", out, "-n", "50")
    _assert_refused(code, err, names, needle)
    assert not out.exists()
    assert _snapshot(run) == before


@pytest.mark.parametrize("case", RESUMABLE)
def test_bad_run_through_train_resume(good_run, tmp_path, capsys, case):
    config = tmp_path / "config.yaml"
    shutil.copy(good_run / "config.yaml", config)
    run, names, needle = _bad_run(case, good_run, tmp_path)
    if case == "not a run":
        needle = r"not a run directory \(no config\.yaml\) and not empty"
    before = _snapshot(run)
    code, err = _cli(capsys, "train", config, "--out", run, "--resume", "--no-progress")
    _assert_refused(code, err, names, needle)
    assert _snapshot(run) == before


def _cut_metrics_line(run: Path) -> None:
    """A kill while a line of metrics.jsonl was written leaves it cut (resume drops it)."""
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text[:-10])


def test_read_metrics_leaves_out_a_cut_line(good_run, tmp_path):
    from physgan.training.rundir import RunDir

    run = _copy_run(good_run, tmp_path)
    rows = RunDir(run).read_metrics()
    assert [row["step"] for row in rows] == [1, 2]
    _cut_metrics_line(run)
    assert RunDir(run).read_metrics() == rows[:1]


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_a_metrics_line_cut_by_a_kill_is_left_out(good_run, tmp_path, capsys, command):
    run = _copy_run(good_run, tmp_path)
    _cut_metrics_line(run)
    extra = ["--out", tmp_path / "cmp"] if command == "compare" else []
    code, err = _cli(capsys, command, run, "-n", "50", *extra)
    assert code == 0, err


# --- pickle never loads ------------------------------------------------------------------------


def test_a_pickle_checkpoint_is_refused_and_never_runs(good_run, tmp_path, capsys):
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Touch(marker))
    pickle.loads(payload)  # the control: unpickling runs the payload
    assert marker.exists()
    marker.unlink()
    run = _copy_run(good_run, tmp_path)
    (run / "checkpoint.safetensors").write_bytes(payload)
    config = tmp_path / "config.yaml"
    shutil.copy(run / "config.yaml", config)
    checkpoint = run / "checkpoint.safetensors"
    needle = r"a pickle, refused: loading it could run code \(physgan checkpoints are safetensors\)"
    for args in (
        ["sample", run, "-n", "5", "-o", tmp_path / "x.npy"],
        ["evaluate", run, "-n", "50"],
        ["train", config, "--out", run, "--resume", "--no-progress"],
    ):
        code, err = _cli(capsys, *args)
        _assert_refused(code, err, checkpoint, needle)
        assert not marker.exists()
    assert not (tmp_path / "x.npy").exists()


_UNSAFE_MODULES = {"pickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
_UNSAFE_CALLS = {"torch.load", "pickle.load", "pickle.loads"} | {
    f"yaml.{fn}" for fn in ("load", "load_all", "unsafe_load", "unsafe_load_all", "full_load")
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _unsafe_loading(source: str) -> list[str]:
    """Imports of pickle-like modules, and calls that unpickle or load YAML unsafely."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"import {n}" for n in names if n and n.split(".")[0] in _UNSAFE_MODULES]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in _UNSAFE_CALLS:
                found.append(f"{name}()")
            for kw in node.keywords:
                value = ast.unparse(kw.value)
                if kw.arg == "allow_pickle" and value != "False":
                    found.append(f"{name}(allow_pickle={value})")
                if kw.arg == "Loader" and value.rpartition(".")[2] not in (
                    "SafeLoader",
                    "CSafeLoader",
                ):
                    found.append(f"{name}(Loader={value})")
    return found


def test_source_never_unpickles_or_loads_yaml_unsafely():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    hits = [f"{p.relative_to(SRC)}: {hit}" for p in files for hit in _unsafe_loading(p.read_text())]
    assert hits == []


def test_the_unsafe_loading_check_finds_what_it_must():
    source = (
        "import pickle\nfrom dill import loads\ntorch.load(f)\nnp.load(f, allow_pickle=True)\n"
        "yaml.load(t, Loader=yaml.Loader)\nyaml.load(t, Loader=yaml.SafeLoader)\n"
        "np.load(f, allow_pickle=False)\nyaml.safe_load(t)\n"
    )
    assert _unsafe_loading(source) == [
        "import pickle",
        "import dill",
        "torch.load()",
        "np.load(allow_pickle=True)",
        "yaml.load()",
        "yaml.load(Loader=yaml.Loader)",
        "yaml.load()",
    ]


# --- properties: the config schema ------------------------------------------------------------


def _field_names() -> list[str]:
    """Every key the schema knows, in any section or model."""
    import physgan.config as schema

    names = set()
    for obj in vars(schema).values():
        if isinstance(obj, type) and issubclass(obj, schema._Section):
            names |= set(obj.model_fields)
    return sorted(names)


_KEYS = st.one_of(
    st.sampled_from(["seed", "data", "model", "loss", "train", "sample", *_field_names()]),
    st.text(max_size=6),
    st.integers(-2, 2),
    st.none(),
)
_WORDS = ["gan", "vae", "flow", "mlp", "dcgan", "epic", "ring8", "relu", "hinge", "nsf"]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(),  # nan, inf and negatives included
    st.text(max_size=8),
    st.sampled_from(_WORDS + OBJECTIVES.names()),
)


def _nested(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4)


_VALUES = st.recursive(_SCALARS, _nested, max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.dictionaries(_KEYS, _VALUES, max_size=5) | _VALUES)
def test_any_raw_config_is_a_config_or_one_config_error_line(raw):
    try:
        config = parse_config(raw)
    except ConfigError as err:
        message = str(err)
        assert message.startswith("config:")
        assert len(message.splitlines()) == 1
    else:
        assert isinstance(config, Config)


_POSITIVE = st.floats(1e-6, 10.0, allow_nan=False)


@st.composite
def _valid_configs(draw) -> dict:
    family = draw(st.sampled_from(["gan", "vae", "flow"]))
    train = {
        "steps": draw(st.integers(1, 10**6)),
        "batch_size": draw(st.integers(1, 4096)),
        "lr_g": draw(_POSITIVE),
        "betas_g": draw(st.tuples(st.floats(0, 0.99), st.floats(0, 0.999))),
        "ema": draw(st.none() | st.floats(0.5, 0.9999)),
    }
    raw: dict = {"seed": draw(st.integers(0, 2**32)), "train": train}
    if draw(st.booleans()):
        raw["data"] = {"path": draw(st.sampled_from(["x.npy", "/data/jets.h5", "a b.root:t"]))}
    else:
        raw["data"] = {"name": draw(st.sampled_from(["ring8", "grid25", "jets-gluon"]))}
    raw["data"]["holdout_fraction"] = draw(st.floats(0.01, 0.99))
    if family == "gan":
        train |= {"lr_d": draw(_POSITIVE), "n_critic": draw(st.integers(1, 5))}
        raw["loss"] = {"name": draw(st.sampled_from(OBJECTIVES.names())), "r1": draw(_POSITIVE)}
        raw["model"] = {
            "generator": {
                "hidden": draw(st.integers(1, 512)),
                "latent_dim": draw(st.integers(1, 64)),
            },
            "discriminator": {
                "pack": draw(st.integers(1, 4)),
                "spectral_norm": draw(st.booleans()),
            },
        }
    elif family == "vae":
        raw["model"] = {
            "family": "vae",
            "beta": draw(st.floats(0, 10)),
            "kl_warmup": draw(st.integers(0, 999)),
        }
    else:
        raw["model"] = {
            "family": "flow",
            "kind": draw(st.sampled_from(["nsf", "maf"])),
            "passes": draw(st.none() | st.integers(2, 4)),
        }
    return raw


@settings(max_examples=100, deadline=None)
@given(raw=_valid_configs())
def test_valid_configs_round_trip_through_dict_and_yaml(raw):
    config = parse_config(raw)
    assert parse_config(config.to_dict()) == config
    # What a run directory saves (config.yaml) reads back as the same config.
    assert parse_config(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


# --- properties: the readers -------------------------------------------------------------------


def _valid_bytes(suffix: str) -> bytes:
    """A small valid file of each format, as bytes, for the mutation test."""
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq
    import uproot

    x = np.random.default_rng(3).normal(size=(12, 3))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"valid{suffix}"
        if suffix == ".npy":
            np.save(path, x)
        elif suffix == ".npz":
            np.savez(path, x=x, cond=x[:, :1])
        elif suffix == ".h5":
            with h5py.File(path, "w") as fh:
                fh["x"], fh["group/cond"] = x, x[:, :1]
        elif suffix == ".root":
            with uproot.recreate(path) as fh:
                fh.mktree("events", {"x": np.float64, "p": (np.float32, (2,))})
                fh["events"].extend({"x": x[:, 0], "p": x[:, 1:].astype(np.float32)})
        else:
            pq.write_table(pa.table({"x": x[:, 0], "y": x[:, 1]}), path)
        return path.read_bytes()


_SUFFIXES = [".npy", ".npz", ".h5", ".root", ".parquet"]
_VALID = {}


@st.composite
def _damaged_files(draw) -> tuple[str, bytes]:
    """A valid file cut short or with a few bytes changed, or random bytes, for each format."""
    suffix = draw(st.sampled_from(_SUFFIXES))
    if suffix not in _VALID:
        _VALID[suffix] = _valid_bytes(suffix)
    data = bytearray(_VALID[suffix])
    how = draw(st.sampled_from(["cut", "flip", "random"]))
    if how == "cut":
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    else:
        data = bytearray(draw(st.binary(min_size=1, max_size=512)))
    return suffix, bytes(data)


def _arrays_or_message(read, path: Path) -> tuple[list[np.ndarray], str | None]:
    """What ``read`` returns, as a list of arrays, or the message of its DataError."""
    try:
        result = read(path)
    except DataError as err:
        return [], str(err)
    arrays = result.values() if isinstance(result, dict) else result
    return [a for a in arrays if a is not None], None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged=_damaged_files())
@example(damaged=(".npy", b"PK\x05\x06" + bytes(18)))  # a zip's magic: np.load leaked a handle
@example(damaged=(".npz", b"PK\x03\x04" + bytes(30)))
def test_damaged_files_give_finite_arrays_or_one_data_error_line(damaged):
    suffix, data = damaged
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"damaged{suffix}"
        path.write_bytes(data)
        for read in (load, read_arrays):
            arrays, message = _arrays_or_message(read, path)
            if message is not None:
                assert str(path) in message
                assert len(message.splitlines()) == 1
            for arr in arrays:
                assert arr.dtype.kind in "fiub"
                assert arr.shape[0] > 0
                assert np.isfinite(arr).all()


if __name__ == "__main__":
    write_corpus()
