"""The theory demo (the main job until the physics issues land): table, identity, files."""

import json
import math

import pytest

from physgan import api
from physgan.cli import main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return api.theory(out=tmp_path_factory.mktemp("theory"))


def test_demo_checks_the_c_of_g_identity(report):
    for identity in report.identity.values():
        assert identity["v_opt"] == pytest.approx(-math.log(4) + 2 * identity["jsd"], abs=1e-5)


def test_demo_fits_show_mode_covering_and_mode_seeking(report):
    forward, reverse = report.fits["forward_kl"], report.fits["reverse_kl"]
    assert forward["mu"] == pytest.approx(0.0, abs=1e-3)  # between the peaks ...
    assert forward["sigma"] == pytest.approx(math.sqrt(0.25 + 4.0), abs=1e-3)  # ... and wide
    assert abs(reverse["mu"]) == pytest.approx(2.0, abs=0.01)  # on one peak
    assert reverse["sigma"] == pytest.approx(0.5, abs=0.01)


def test_demo_writes_figure_and_json(report):
    assert report.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(report.json.read_text())
    assert set(saved["fits"]) == {"forward_kl", "reverse_kl", "jsd"}
    assert "forward_kl" in report.table
    assert "-ln4+2JSD" in report.table


def test_cli_theory_prints_the_table(tmp_path, capsys):
    assert main(["theory", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "C(G) identity" in out
    assert (tmp_path / "theory.png").is_file()
