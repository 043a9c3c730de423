"""scripts/bench remote --tls: the cost of TLS on the page-server connections.

Every drain and latency session of the remote suite is run a second time,
right after its plain twin, with the page server and the daemon under
--tls (mutual authentication; certificates made by test/lib/tlscerts.py in
the work dir).  Figures: the drain rate with TLS against plain TCP of the
same run (target >= 0.6), the CPU both sides spend per GiB, and the task's
wait per fault, idle and while draining, next to plain TCP's.
"""
import statistics
import sys

from .common import ROOT

DRAIN_TLS_MIN = 0.6	# issue 12


def make_certs(workdir):
    sys.path.insert(0, str(ROOT / "test"))
    from lib.tlscerts import Certs
    return Certs(workdir / "pki")


def args(certs, name):
    return [str(a) for a in certs.args(name)]


def _rate(d):
    return d["stats"]["bytes"] / d["stats"]["duration_s"] / (1 << 20)


def _median(sessions, get):
    return statistics.median(get(x) for x in sessions)


def figures(suite, wl, plain, tls, idle, busy, idle_tls, busy_tls):
    r = suite.report
    gib = 1 << 30
    rate, rate_tls = _median(plain, _rate), _median(tls, _rate)
    r.section(f"TLS: the same sessions with --tls, interleaved (median of {len(tls)})")
    r.figure("drain_tls_mib_s", "drain rate over TLS", rate_tls, "MiB/s",
             "runs: " + " ".join(f"{_rate(d):.0f}" for d in tls))
    r.figure("drain_plain_mib_s", "drain rate over plain TCP, same run", rate, "MiB/s",
             "runs: " + " ".join(f"{_rate(d):.0f}" for d in plain))
    r.ratio("drain_tls", "drain rate TLS / plain TCP", rate_tls / rate, ">=", DRAIN_TLS_MIN)
    for key, what in (("daemon_cpu_s", "lazy-pages daemon"), ("server_cpu_s", "page server")):
        both = [s for s in plain + tls if s.get(key) is not None]
        if len(both) < len(plain) + len(tls):
            continue
        p = _median(plain, lambda d: d[key] * gib / d["stats"]["bytes"])
        t = _median(tls, lambda d: d[key] * gib / d["stats"]["bytes"])
        r.figure(f"{key}_gib_tls", f"CPU-s per GiB, {what}, TLS", t, "s", f"plain {p:.3f} s")
    for what, a, b in (("idle", idle, idle_tls), ("draining", busy, busy_tls)):
        for q in ("p50", "p99"):
            def task(x, q=q):
                return x["touch"]["latency"][f"fault_{q}_us"]
            p, t = _median(a, task), _median(b, task)
            r.figure(f"task_fault_{q}_us_{what}_tls", f"{what}: task's wait per fault, {q}, TLS",
                     t, "us", f"plain {p:.1f} us")
            r.ratio(f"fault_{q}_{what}_tls", f"{what}: task's {q} wait, TLS / plain", t / p)
    for x in tls + idle_tls + busy_tls:
        suite.check_stats(x, wl)
