"""The soak of lazy restore (issue 12, point 5; Documentation/soak.md).

Several lazy restores at once, round after round (test/lib/soak.py): lanes
of lazy_churn, tree_lazy_stress and threads_lazy_stress, half with pages
from the images, half through page servers that are killed meanwhile and
started again (the daemons reconnect: --page-server-reconnect), or, every
fourth round for two lanes, never.  Every lane must end in a defined
outcome.  It runs for
CRIU_LAZY_SOAK_SECONDS (default 150; `scripts/soak --seconds N` for
longer) and prints the load it held.
"""
import json

from lib.soak import Soak, soak_seconds


def test_soak(tool, procs, workdir):
    summary = Soak(tool, procs, workdir, soak_seconds()).run()
    print("\nsoak: " + json.dumps(summary))
    assert summary["pages_lost"] == 0, summary
    assert summary["outcomes"]["ok"] >= 1, summary
    # a server killed and started again is reconnected to (each lane's kill
    # may come after its last page, but not in every lane of a run)
    if summary["server_kills"] > summary["outcomes"]["gone-sigbus"] + \
            summary["outcomes"]["gone-unneeded"]:
        assert summary["reconnects"] >= 1, summary
