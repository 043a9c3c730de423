"""The soak of lazy restore (issue 12, point 5; Documentation/soak.md).

Several lazy restores at once, round after round (test/lib/soak.py): lanes
of lazy_churn, tree_lazy_stress and threads_lazy_stress, half with pages
from the images, half through page servers that are killed meanwhile.
Every lane must end in a defined outcome.  It runs for
CRIU_LAZY_SOAK_SECONDS (default 150; `scripts/soak --seconds N` for
longer) and prints the load it held.
"""
import json

from lib.soak import Soak, soak_seconds


def test_soak(tool, procs, workdir):
    summary = Soak(tool, procs, workdir, soak_seconds(), kills=False).run()
    print("\nsoak: " + json.dumps(summary))
    assert summary["pages_lost"] == 0, summary
    assert summary["outcomes"]["ok"] >= 1, summary
