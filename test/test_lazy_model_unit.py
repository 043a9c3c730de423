"""The lazy model's pure logic: build/test/unit/test_lazy_model (every page
delivered exactly once through faults, background steps, put backs, drops,
remaps and forks, checked page by page against a plain array; a 16 TiB
sparse mapping with four lazy pages costing a few hundred bytes).

Needs a build (`scons -j2`); uses nothing from conftest.py.
"""
import subprocess

import pytest

from lib import paths

UNIT = paths.BUILD / "test" / "unit" / "test_lazy_model"
CASES = 8	# the run() lines of its main()


def test_lazy_model_unit():
    if not UNIT.exists():
        pytest.fail(f"{UNIT} is not built: run scons -j2")
    res = subprocess.run([str(UNIT)], capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stdout + res.stderr
    assert not [line for line in lines if line.startswith("FAIL")], res.stdout
    assert sum(line.startswith("ok - ") for line in lines) == CASES, res.stdout
