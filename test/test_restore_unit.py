"""The restore's pure logic: build/test/unit/test_restore_layout (the hole
free in two layouts, the vdso shape check, the XSAVE buffer built from an
image against made-up and real CPUs), and test_array (common/array.h).

Needs a build (`scons -j2`); uses nothing from conftest.py.
"""
import subprocess

import pytest

from lib import paths

UNIT = paths.BUILD / "test" / "unit" / "test_restore_layout"


def test_restore_layout_unit():
    if not UNIT.exists():
        pytest.fail(f"{UNIT} is not built: run scons -j2")
    res = subprocess.run([str(UNIT)], capture_output=True, text=True, timeout=60)
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stdout + res.stderr
    assert not [line for line in lines if line.startswith("FAIL")], res.stdout
    assert sum(line.startswith("ok - ") for line in lines) >= 10, res.stdout


def test_array_grow_unit():
    """common/array.h: doubling from the first size, overflow is -ENOMEM."""
    unit = paths.BUILD / "test" / "unit" / "test_array"
    if not unit.exists():
        pytest.fail(f"{unit} is not built: run scons -j2")
    res = subprocess.run([str(unit)], capture_output=True, text=True, timeout=60)
    lines = res.stdout.splitlines()
    assert res.returncode == 0, res.stdout + res.stderr
    assert sum(line.startswith("ok - ") for line in lines) == 3, res.stdout
