"""Decoding images with CRIU's own crit, and the image constants the checks
compare against (mm VMA flags and status bits, open flags, rlimits)."""
import json
import resource
import shutil
import subprocess

import pytest



TIMEOUT = 60


PROT = {"r": 1, "w": 2, "x": 4}


MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x1, 0x2, 0x20


VMA_AREA_REGULAR, VMA_AREA_VSYSCALL, VMA_AREA_VDSO = 1 << 0, 1 << 2, 1 << 3


VMA_FILE_PRIVATE, VMA_FILE_SHARED, VMA_ANON_SHARED, VMA_ANON_PRIVATE = (
    1 << 6, 1 << 7, 1 << 8, 1 << 9)


VMA_AREA_VVAR = 1 << 12


VMA_AREA_MEMFD = 1 << 14


O_CLOEXEC = 0o2000000


RLIM_INFINITY = 2**64 - 1


def need_crit():
    crit = shutil.which("crit")
    if not crit:
        pytest.fail("crit is missing: scripts/setup installs it (Debian package criu)",
                    pytrace=False)
    return crit


def run(argv):
    p = subprocess.run([str(a) for a in argv], capture_output=True, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def crit_decode(path):
    rc, out, err = run([need_crit(), "decode", "-i", path])
    assert rc == 0, f"crit decode -i {path.name} failed:\n{err}"
    return json.loads(out)


def entries(decoded, name):
    return decoded[name]["entries"]


def only(decoded, name):
    e = entries(decoded, name)
    assert len(e) == 1, f"{name} should hold one entry, holds {len(e)}"
    return e[0]


def mark_ghosts(decoded, files):
    """A deleted file is in files.img under the name it had, with a ghost
    (remap-fpath.img, ghost-file-<hex id>.img), or, with --link-remap, a
    file whose name is gone with a link (remap-fpath.img: LINKED to a file
    of files.img, "link_remap.<its id>" in the directory of the name or
    above it): give it the name /proc shows, "<name> (deleted)"."""
    if "remap-fpath.img" not in decoded:
        return
    for r in entries(decoded, "remap-fpath.img"):
        assert r["remap_type"] in ("GHOST", "LINKED"), f"remap {r}: neither ghost nor link"
        if r["remap_type"] == "LINKED":
            link = files[r["remap_id"]]["reg"]["name"]
            orig = files[r["orig_id"]]["reg"]["name"]
            head, _, tail = link.rpartition("/")
            assert tail == f"link_remap.{r['remap_id']}" and orig.startswith(head + "/"), (
                f"remap {r}: link {link} for {orig}")
            files[r["orig_id"]]["reg"]["name"] += " (deleted)"
            continue
        ghost = f"ghost-file-{r['remap_id']:x}.img"
        assert ghost in decoded, f"remap {r}: {ghost} was not written"
        gfe = entries(decoded, ghost)[0]
        reg = files[r["orig_id"]]["reg"]
        if "size" in reg:
            assert gfe.get("size", reg["size"]) == reg["size"], f"{ghost}: size"
        reg["name"] += " (deleted)"


def unlimited(v):
    return RLIM_INFINITY if v == resource.RLIM_INFINITY else v
