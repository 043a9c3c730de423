"""The lazy model's pure logic: build/test/unit/test_lazy_model (every page
delivered exactly once through faults, background steps, put backs, drops,
remaps and forks, checked page by page against a plain array; a 16 TiB
sparse mapping with four lazy pages costing a few hundred bytes).

Needs a build (`scons -j2`); uses nothing from conftest.py.
"""
from lib.unit import run_unit

CASES = 8	# the run() lines of its main()


def test_lazy_model_unit():
    lines, passed = run_unit("test_lazy_model", timeout=120)
    assert passed == CASES, "\n".join(lines)
