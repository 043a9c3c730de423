"""Issue 13's two symptoms, reproduced as they were reported: a task that
splits a lazy VMA with no userfaultfd event (mprotect) while its pages are
still lazy must get every page, and the daemon must say nothing was lost.

- 64 pages, --no-background-fetch, mprotect of page 8: the first fault's
  window crosses the new boundary (it used to hang the task for good);
- 256 MiB with background delivery on and a page made read-only every 61
  pages while the chunks go in (pages used to be "dropped" and read as 0).

The full coverage (every way to split, every mode) is the lazy_* zdtm
programs'; this program is built here, from the source below, so the
catalogue of the suite does not change.
"""
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lib import lazy, paths
from lib.zdtm import ZdtmTest
from test_lazy import dump, lazy_restore

TIMEOUT = 60

SOURCE = r"""
#include <sys/mman.h>
#include "lib/zdtmtst.h"

#define SEED 0x73706c6974ULL

int main(int argc, char **argv)
{
	size_t size = 64 * PAGE_SIZE;
	long stride = 64;
	const struct test_opt opts[] = {
		{ "size", TEST_OPT_SIZE, &size, 0, "bytes of memory" },
		{ "stride", TEST_OPT_INT, &stride, 0, "make page 8 + k*stride read-only" },
		{ NULL, 0, NULL, 0, NULL },
	};
	uint8_t *mem;

	test_init(argc, argv, opts);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail("mmap: %m");
	pattern_fill(mem, size, SEED);
	test_daemon();
	test_waitsig();

	/* split the VMA: no userfaultfd event tells the daemon */
	for (size_t p = 8; p < size / PAGE_SIZE; p += stride)
		if (mprotect(mem + p * PAGE_SIZE, PAGE_SIZE, PROT_READ))
			fail("mprotect page %zu: %m", p);
	pattern_expect("the split region", mem, size, SEED);
	pass();
}
"""


@dataclass(frozen=True)
class Program(ZdtmTest):
    path: str = ""

    def binary(self):
        return Path(self.path)


def build(workdir):
    src, exe = workdir / "lazy_split_repro.c", workdir / "lazy_split_repro"
    src.write_text(SOURCE)
    libs = sorted(str(p) for p in (paths.ZDTM_SRC / "lib").glob("*.c"))
    subprocess.run(["gcc", "-std=gnu11", "-O2", "-Wall", "-Werror", "-D_GNU_SOURCE",
                    "-I", str(paths.ZDTM_SRC), "-I", str(paths.ZDTM_SRC / "lib"),
                    "-o", str(exe), str(src), *libs], check=True, timeout=120)
    return str(exe)


@pytest.mark.parametrize("size,pages,stride,background", [
    ("256K", 64, 64, False),
    ("256M", 65536, 61, True),
], ids=["64-pages-fault-only", "256M-background"])
def test_mprotect_split_while_lazy(zdtm, tool, procs, workdir, size, pages, stride, background):
    task = zdtm(Program("lazy_split_repro", ("--size", size, "--stride", str(stride)),
                        label=size, path=build(workdir)))
    imgdir = workdir / "images"
    dump(tool, task, imgdir, workdir)
    daemon = lazy.start_daemon(procs, tool, imgdir, workdir,
                               *(() if background else ("--no-background-fetch",)))
    lazy_restore(tool, task, imgdir, workdir)
    task.check_pass()	# SIGTERM: the program splits its region and reads it all
    daemon.expect_clean_exit(timeout=TIMEOUT)
    st = lazy.check_stats(imgdir, daemon.text())
    assert st["pages_dropped_event"] == 0 and st["pages_lost"] == 0, st
    assert st["pages_fault"] + st["pages_background"] >= pages, st
