"""The wheel as a user installs it: built, installed into a fresh virtual environment, and
run from an empty folder (configs by name, sample, evaluate), away from this checkout."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    _run([*cmd, "-w", str(out), str(ROOT)], ROOT, env)
    (path,) = out.glob("physgan-*.whl")
    return path


def test_the_wheel_holds_the_configs_the_type_marker_and_the_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "src" / "physgan" / "configs").glob("*.yaml")}
    assert {f"physgan/configs/{name}" for name in shipped} <= names
    assert "physgan/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_the_installed_wheel_trains_a_config_by_name_samples_and_evaluates(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Reuse this environment's dependencies: its site-packages as a plain path (a .pth line,
    # whose own .pth files, this checkout's editable install among them, are not processed).
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "_physgan_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    _run([*pip, "--no-deps", "--no-index", str(wheel)], tmp_path, env)

    work = tmp_path / "analysis"  # an empty folder of the user's, far from this checkout
    work.mkdir()
    where = _run([str(python), "-c", "import physgan; print(physgan.__file__)"], work, env)
    assert Path(where.strip()).is_relative_to(venv)
    physgan = str(venv / "bin" / "physgan")
    assert "grid25" in _run([physgan, "configs", "list"], work, env)
    assert "model:" in _run([physgan, "configs", "show", "ring8"], work, env)
    short = ["--set", "train.steps=30", "--set", "data.n_train=2000", "--no-progress"]
    _run([physgan, "train", "ring8", "--out", "run", *short], work, env)
    _run([physgan, "sample", "run", "-n", "200", "-o", "samples.npy"], work, env)
    _run([physgan, "evaluate", "run", "-n", "200"], work, env)
    assert (work / "samples.npy").is_file()
    assert (work / "run" / "report.html").is_file()
    assert (work / "run" / "metrics.json").is_file()
