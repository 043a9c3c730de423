"""The C unit test programs of test/unit/: each prints "ok - NAME" or
"FAIL - NAME" per case and exits with the number of failures."""
import subprocess

import pytest

from . import paths


def run_unit(name, timeout=60):
    """Run build/test/unit/NAME, check that no case failed; its stdout lines
    and the number of cases that passed."""
    unit = paths.BUILD / "test" / "unit" / name
    if not unit.exists():
        pytest.fail(f"{unit} is not built: run scons -j2")
    res = subprocess.run([str(unit)], capture_output=True, text=True, timeout=timeout)
    lines = res.stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert res.returncode == 0 and not failed, res.stdout + res.stderr
    return lines, sum(line.startswith("ok - ") for line in lines)
