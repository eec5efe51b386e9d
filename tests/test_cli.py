"""The CLI: bad input gives one line naming the problem and exit code 2, never a traceback."""

import subprocess
import sys

import numpy as np
import pytest
import yaml

from physgan.cli import main


def _write(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"stepz": 3}}, "train.stepz: unknown key"),
        ({"train": {"lr_g": -1.0}}, "train.lr_g"),
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"loss": {"name": "hing"}}, "loss.name: unknown loss 'hing'; choose from: hinge"),
        ({"model": {"generator": {"kind": "mlp", "hiden": 3}}}, "model.generator.hiden"),
        ({"data": {"name": "ring8", "path": "x.npy"}}, "exactly one of data.name"),
        ({"data": {"name": "ring9"}}, "unknown dataset 'ring9'"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_errors_exit_2_with_one_line(tiny_config, tmp_path, capsys, change, needle):
    config = {**tiny_config, **change}
    code = main(["train", str(_write(tmp_path / "c.yaml", config)), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("train.batch_size=0", "train.batch_size"),
        ("nokey", "expected key=value"),
        ("train.steps.x=1", "train.steps.x"),
        ("model.discriminator.pack=3", "multiple of"),
    ],
)
def test_bad_overrides_exit_2(tiny_config, tmp_path, capsys, setting, needle):
    path = _write(tmp_path / "c.yaml", tiny_config)
    code = main(["train", str(path), "--out", str(tmp_path / "r"), "--set", setting])
    assert code == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "needle"),
    [("train: [1, 2", "not valid YAML"), ("- a\n- b\n", "mapping"), (None, "no such file")],
)
def test_unreadable_configs_exit_2(tmp_path, capsys, content, needle):
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (np.array([[0.0], [np.nan]]), "NaN or inf"),
        (np.zeros((0, 2)), "shape"),
        (np.zeros(5), "shape"),
        (b"not numpy at all", "cannot read"),
    ],
)
def test_bad_data_files_exit_2(tiny_config, tmp_path, capsys, data, needle):
    path = tmp_path / "data.npy"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        np.save(path, data)
    config = {**tiny_config, "data": {"path": str(path)}}
    code = main(["train", str(_write(tmp_path / "c.yaml", config)), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err
    assert needle in err


def test_train_sample_evaluate_round_trip(tiny_config, tmp_path, capsys):
    path = _write(tmp_path / "c.yaml", tiny_config)
    run = tmp_path / "run"
    assert (
        main(["train", str(path), "--out", str(run), "--no-progress", "--set", "train.steps=20"])
        == 0
    )
    assert main(["sample", str(run), "-n", "50", "-o", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    assert main(["evaluate", str(run), "-n", "200"]) == 0
    assert '"n_modes": 8' in capsys.readouterr().out


def test_sample_errors_exit_2(tiny_config, tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nope"), "-n", "5", "-o", str(tmp_path / "x.npy")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    run = tmp_path / "run"
    path = _write(tmp_path / "c.yaml", tiny_config)
    assert (
        main(["train", str(path), "--out", str(run), "--no-progress", "--set", "train.steps=2"])
        == 0
    )
    capsys.readouterr()
    for args, needle in [
        (["-n", "0", "-o", str(tmp_path / "x.npy")], "-n"),
        (["-n", "5", "-o", str(tmp_path / "x.txt")], "use one of .h5, .hdf5, .npy, .parquet"),
        (["-n", "5", "-o", str(tmp_path / "missing" / "x.npy")], "does not exist"),
        (["-n", "5", "-o", str(tmp_path / "x.npy"), "--seed", "-1"], "--seed"),
    ]:
        assert main(["sample", str(run), *args]) == 2
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "physgan", "train", str(tmp_path / "missing.yaml"), "--out", "r"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("physgan: error: config")
    assert "Traceback" not in proc.stderr
