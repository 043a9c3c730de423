/*
 * test_images_sample DIR: write a complete, made-up image set with the
 * image library, so that test/test_images.py can check that CRIU's own
 * decoder (crit) and `criu-lazy show` read every image as written.
 *
 * Two processes: 1000 (threads 1000 and 1001) and its child 1002.  Every
 * value is fixed; test_images.py knows the ones it checks (SAMPLE_* below).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"

#include "core.pb-c.h"
#include "fs.pb-c.h"
#include "inventory.pb-c.h"
#include "pstree.pb-c.h"
#include "seccomp.pb-c.h"
#include "stats.pb-c.h"
#include "timens.pb-c.h"

#include "sample.h"

static int write_inventory(int dirfd)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	TaskKobjIdsEntry root = TASK_KOBJ_IDS_ENTRY__INIT;
	PluginsEntry plugins = PLUGINS_ENTRY__INIT;

	root.vm_id = 1;
	root.files_id = 1;
	root.fs_id = 1;
	root.sighand_id = 1;
	root.has_pid_ns_id = root.has_net_ns_id = root.has_mnt_ns_id = true;
	root.pid_ns_id = 3;
	root.net_ns_id = 4;
	root.mnt_ns_id = 5;
	inv.img_version = 2;
	inv.has_fdinfo_per_id = inv.has_ns_per_id = true;
	inv.fdinfo_per_id = inv.ns_per_id = true;
	inv.root_ids = &root;
	inv.has_root_cg_set = true;
	inv.root_cg_set = 1;
	inv.has_lsmtype = true;
	inv.lsmtype = LSMTYPE__NO_LSM;
	inv.has_network_lock_method = true;
	inv.network_lock_method = 0;
	inv.plugins_entry = &plugins;
	inv.dump_criu_run_id = "5bd3e4c2-0d1c-4a39-9b35-6f5e3b0c6a11";
	return img_write_one(dirfd, IMG_INVENTORY, 0, &inv.base);
}

static int write_pstree(int dirfd)
{
	uint32_t t0[] = { 1000, 1001 }, t1[] = { 1002 };
	PstreeEntry e = PSTREE_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	ret = img_open(dirfd, IMG_PSTREE, 0, O_WRONLY, &img);
	if (ret)
		return ret;
	e.pid = e.pgid = e.sid = 1000;
	e.n_threads = 2;
	e.threads = t0;
	ret = img_write_entry(img, &e.base);
	e.pid = 1002;
	e.ppid = 1000;
	e.n_threads = 1;
	e.threads = t1;
	ret = ret ?: img_write_entry(img, &e.base);
	return img_close(img) ?: ret;
}

static int write_ids(int dirfd, unsigned long pid, uint32_t base)
{
	TaskKobjIdsEntry ids = TASK_KOBJ_IDS_ENTRY__INIT;

	ids.vm_id = base;
	ids.files_id = base;
	ids.fs_id = base;
	ids.sighand_id = base;
	ids.has_pid_ns_id = ids.has_net_ns_id = ids.has_mnt_ns_id = true;
	ids.pid_ns_id = 3;
	ids.net_ns_id = 4;
	ids.mnt_ns_id = 5;
	return img_write_one(dirfd, IMG_IDS, pid, &ids.base);
}

static int write_fs(int dirfd, unsigned long pid)
{
	FsEntry fs = FS_ENTRY__INIT;

	fs.cwd_id = 2;
	fs.root_id = 3;
	fs.has_umask = true;
	fs.umask = 022;
	return img_write_one(dirfd, IMG_FS, pid, &fs.base);
}

static int write_misc(int dirfd)
{
	SeccompEntry sc = SECCOMP_ENTRY__INIT;
	TimensEntry tn = TIMENS_ENTRY__INIT;
	Timespec mono = TIMESPEC__INIT, boot = TIMESPEC__INIT;
	StatsEntry st = STATS_ENTRY__INIT;
	DumpStatsEntry ds = DUMP_STATS_ENTRY__INIT;
	RestoreStatsEntry rs = RESTORE_STATS_ENTRY__INIT;
	int ret;

	ret = img_write_one(dirfd, IMG_SECCOMP, 0, &sc.base);

	mono.tv_sec = 86400;
	mono.tv_nsec = 123456789;
	boot.tv_sec = 86410;
	boot.tv_nsec = 987654321;
	tn.monotonic = &mono;
	tn.boottime = &boot;
	ret = ret ?: img_write_one(dirfd, IMG_TIMENS, 0, &tn.base);

	ds.freezing_time = 1200;
	ds.frozen_time = 25000;
	ds.memdump_time = 8000;
	ds.memwrite_time = 9000;
	ds.pages_scanned = 200;
	ds.pages_written = 42;
	ds.pages_lazy = 39;
	ds.has_page_pipes = ds.has_page_pipe_bufs = true;
	ds.page_pipes = 1;
	ds.page_pipe_bufs = 2;
	st.dump = &ds;
	ret = ret ?: img_write_one(dirfd, IMG_STATS_DUMP, 0, &st.base);

	st.dump = NULL;
	rs.forking_time = 300;
	rs.restore_time = 4000;
	rs.has_pages_restored = true;
	rs.pages_restored = 3;
	st.restore = &rs;
	return ret ?: img_write_one(dirfd, IMG_STATS_RESTORE, 0, &st.base);
}

int main(int argc, char **argv)
{
	int dirfd, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	log_init("test_images_sample", LOG_WARN, NULL);
	mkdir(argv[1], 0700);
	dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		perror(argv[1]);
		return 1;
	}

	ret = write_inventory(dirfd);
	ret = ret ?: write_pstree(dirfd);
	ret = ret ?: write_core(dirfd, 1000, true, "sample");
	ret = ret ?: write_core(dirfd, 1001, false, "sample");
	ret = ret ?: write_core(dirfd, 1002, true, "sample-child");
	ret = ret ?: write_ids(dirfd, 1000, 1);
	ret = ret ?: write_ids(dirfd, 1002, 2);
	ret = ret ?: write_mm(dirfd, 1000, 8);
	ret = ret ?: write_mm(dirfd, 1002, 4);
	ret = ret ?: write_pagemap(dirfd);
	ret = ret ?: write_fs(dirfd, 1000);
	ret = ret ?: write_fs(dirfd, 1002);
	ret = ret ?: write_files(dirfd);
	ret = ret ?: write_fdinfo(dirfd, 1);
	ret = ret ?: write_fdinfo(dirfd, 2);
	ret = ret ?: write_pipes_data(dirfd);
	ret = ret ?: write_tty_info(dirfd);
	ret = ret ?: write_misc(dirfd);
	close(dirfd);
	return ret ? 1 : 0;
}
