"""scripts/pool_evaluations.py: the pooled ratio is the mean value over the mean floor."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pool_evaluations.py"
spec = importlib.util.spec_from_file_location("pool_evaluations", SCRIPT)
pool_evaluations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pool_evaluations)


def _result(w1m, floor, auc):
    return {
        "w1m": {"value": w1m, "floor": floor},
        "auc": {"value": auc, "floor": 0.5},
        "kind": "jets",
    }


def test_ratio_of_means_and_per_reference():
    results = {
        "a": [_result(2.0, 1.0, 0.6), _result(4.0, 1.0, 0.62)],
        "b": [_result(3.0, 2.0, 0.64)],
    }
    pooled = pool_evaluations.pool(results)
    estimate = 9.0 / 4.0  # (2+4+3)/3 over (1+1+2)/3
    assert pooled["w1m"]["estimate"] == pytest.approx(estimate)
    assert pooled["w1m"]["by_reference"] == pytest.approx({"a": 3.0, "b": 1.5})
    lo, hi = pooled["w1m"]["interval_95"]
    # Any bootstrap draw's ratio lies between all-b (3 / 2) and all of a's 4.0 (4 / 1)...
    assert lo >= 1.5
    assert hi <= 4.0
    # ...and the draws differ, so the interval has width on both sides of the estimate.
    assert lo < estimate
    assert hi > estimate
    assert pooled["auc"]["kind"] == "value"
    assert pooled["auc"]["estimate"] == pytest.approx(np.mean([0.6, 0.62, 0.64]))
    assert "w1p" not in pooled  # absent from the results: not made up


def test_identical_evaluations_give_an_interval_of_zero_width():
    same = {name: [_result(2.0, 0.5, 0.6)] * 3 for name in ("a", "b", "c")}
    pooled = pool_evaluations.pool(same)
    assert pooled["w1m"]["estimate"] == pytest.approx(4.0)
    assert pooled["w1m"]["interval_95"] == pytest.approx([4.0, 4.0])
    assert pooled["auc"]["interval_95"] == pytest.approx([0.6, 0.6])


def test_the_script_reads_directories_and_refuses_a_file(tmp_path):
    for name, value in [("ev-x1-0", 2.0), ("ev-x1-1", 4.0), ("ev-x2-0", 3.0)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(_result(value, 1.0, 0.6)))
    out = tmp_path / "pooled.json"
    dirs = sorted(str(p) for p in tmp_path.glob("ev-*"))
    done = subprocess.run(
        [sys.executable, SCRIPT, *dirs, "--json", out], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    pooled = json.loads(out.read_text())
    assert pooled["references"] == ["ev-x1", "ev-x2"]
    assert pooled["pooled"]["w1m"]["estimate"] == pytest.approx(3.0)
    (tmp_path / "stray.log").write_text("")
    bad = subprocess.run([sys.executable, SCRIPT, tmp_path / "stray.log"], capture_output=True)
    assert bad.returncode == 2
    assert b"no metrics.json" in bad.stderr.splitlines()[-1]
