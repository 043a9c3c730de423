/*
 * Unit tests of the image files (images/image.c): record framing, magic
 * words, raw data after records, and every error path of reading and
 * writing, each asserting the exact error line.  Prints "ok - NAME" or
 * "FAIL - NAME" per case; the exit status is the number of failures.
 */
#include "images/image.h"
#include "images/magic.h"

#include "core.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pipe-data.pb-c.h"
#include "pstree.pb-c.h"
#include "seccomp.pb-c.h"
#include "stats.pb-c.h"

#include "test_images.h"

/* ---- framing ---------------------------------------------------------- */

static int test_core_roundtrip(int dirfd)
{
	UserX86RegsEntry regs = USER_X86_REGS_ENTRY__INIT;
	UserX86FpregsEntry fp = USER_X86_FPREGS_ENTRY__INIT;
	ThreadInfoX86 ti = THREAD_INFO_X86__INIT;
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	ThreadCoreEntry thc = THREAD_CORE_ENTRY__INIT;
	CoreEntry core = CORE_ENTRY__INIT;
	uint32_t xmm[64];
	CoreEntry *rd;

	for (int i = 0; i < 64; i++)
		xmm[i] = 0x1000 + i;
	regs.ip = 0x7f0000401000ULL;
	regs.sp = 0x7ffc00000ff8ULL;
	regs.ax = (uint64_t)-38;
	regs.cs = 0x33;
	regs.ss = 0x2b;
	fp.mxcsr = 0x1f80;
	fp.n_xmm_space = 64;
	fp.xmm_space = xmm;
	ti.clear_tid_addr = 0x7f0000123450ULL;
	ti.gpregs = &regs;
	ti.fpregs = &fp;
	tc.task_state = 1;
	tc.comm = "roundtrip";
	tc.blk_sigset = 1ULL << 63;
	thc.futex_rla = 0x7f00001234a0ULL;
	thc.futex_rla_len = 24;
	thc.has_sched_nice = true;
	thc.sched_nice = -5;
	core.mtype = CORE_ENTRY__MARCH__X86_64;
	core.thread_info = &ti;
	core.tc = &tc;
	core.thread_core = &thc;

	CHECK(img_write_one(dirfd, IMG_CORE, 4711, &core.base) == 0, "");
	CHECK(file_size(dirfd, "core-4711.img") > 8, "");
	CHECK(img_read_one(dirfd, IMG_CORE, 4711, &core_entry__descriptor,
			   (ProtobufCMessage **)&rd) == 0, "");
	CHECK(rd->mtype == CORE_ENTRY__MARCH__X86_64, "");
	CHECK(rd->thread_info->gpregs->ip == regs.ip, "");
	CHECK(rd->thread_info->gpregs->ax == (uint64_t)-38, "");
	CHECK(!rd->thread_info->gpregs->has_mode &&
	      rd->thread_info->gpregs->mode == USER_X86_REGS_MODE__NATIVE, "default mode");
	CHECK(rd->thread_info->fpregs->n_xmm_space == 64 &&
	      rd->thread_info->fpregs->xmm_space[63] == 0x1000 + 63, "");
	CHECK(!strcmp(rd->tc->comm, "roundtrip"), "");
	CHECK(rd->tc->blk_sigset == 1ULL << 63, "");
	CHECK(rd->thread_core->has_sched_nice && rd->thread_core->sched_nice == -5, "");
	protobuf_c_message_free_unpacked(&rd->base, NULL);
	return 0;
}

static int test_magic_words(int dirfd)
{
	InventoryEntry inv = INVENTORY_ENTRY__INIT;
	StatsEntry st = STATS_ENTRY__INIT;
	DumpStatsEntry ds = DUMP_STATS_ENTRY__INIT;
	uint32_t w[2];
	int fd;

	inv.img_version = 2;
	CHECK(img_write_one(dirfd, IMG_INVENTORY, 0, &inv.base) == 0, "");
	st.dump = &ds;
	CHECK(img_write_one(dirfd, IMG_STATS_DUMP, 0, &st.base) == 0, "");
	CHECK(write_pstree(dirfd, 1, 1) == 0, "");

	fd = openat(dirfd, "inventory.img", O_RDONLY);
	CHECK(pread(fd, w, 8, 0) == 8, "");
	close(fd);
	CHECK(w[0] == INVENTORY_MAGIC, "0x%x", w[0]);
	fd = openat(dirfd, "stats-dump", O_RDONLY);
	CHECK(pread(fd, w, 8, 0) == 8, "");
	close(fd);
	CHECK(w[0] == IMG_SERVICE_MAGIC && w[1] == STATS_MAGIC, "");
	fd = openat(dirfd, "pstree.img", O_RDONLY);
	CHECK(pread(fd, w, 8, 0) == 8, "");
	close(fd);
	CHECK(w[0] == IMG_COMMON_MAGIC && w[1] == PSTREE_MAGIC, "");
	return 0;
}

/* Many records through the write buffer, read back to a clean EOF. */
static int test_many_records(int dirfd)
{
	const unsigned n = 20000;
	ProtobufCMessage *msg;
	struct cr_img *img;
	unsigned i = 0;
	int ret;

	CHECK(write_pstree(dirfd, n, 8) == 0, "");
	CHECK(file_size(dirfd, "pstree.img") > (256 << 10), "more than one buffer");
	CHECK(img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img) == 0, "");
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, &msg)) == 1) {
		PstreeEntry *e = (PstreeEntry *)msg;

		CHECK(e->pid == 100 + i && e->n_threads == 8 &&
		      e->threads[7] == e->pid + 700000, "entry %u", i);
		protobuf_c_message_free_unpacked(msg, NULL);
		i++;
	}
	CHECK(ret == 0 && i == n, "ret %d, %u entries", ret, i);
	CHECK(img_offset(img) == file_size(dirfd, "pstree.img"), "");
	img_close(img);
	return 0;
}

/* A record larger than the write buffer goes around it. */
static int test_big_record(int dirfd)
{
	const size_t nr = 60000;
	MmEntry mm = MM_ENTRY__INIT, *rd;
	VmaEntry *vmas = calloc(nr, sizeof(*vmas));
	VmaEntry **ptrs = calloc(nr, sizeof(*ptrs));

	CHECK(vmas && ptrs, "");
	for (size_t i = 0; i < nr; i++) {
		vma_entry__init(&vmas[i]);
		vmas[i].start = 0x10000000ULL + i * 2 * PAGE;
		vmas[i].end = vmas[i].start + PAGE;
		vmas[i].fd = -1;
		ptrs[i] = &vmas[i];
	}
	mm.n_vmas = nr;
	mm.vmas = ptrs;
	CHECK(img_write_one(dirfd, IMG_MM, 1, &mm.base) == 0, "");
	free(ptrs);
	free(vmas);
	CHECK(file_size(dirfd, "mm-1.img") > (1 << 20), "");
	CHECK(img_read_one(dirfd, IMG_MM, 1, &mm_entry__descriptor,
			   (ProtobufCMessage **)&rd) == 0, "");
	CHECK(rd->n_vmas == nr, "");
	CHECK(rd->vmas[nr - 1]->start == 0x10000000ULL + (nr - 1) * 2 * PAGE, "");
	CHECK(rd->vmas[nr - 1]->fd == -1, "");
	protobuf_c_message_free_unpacked(&rd->base, NULL);
	return 0;
}

/* pipes-data.img: raw bytes after a record through img_raw_fd(). */
static int test_raw_data(int dirfd)
{
	PipeDataEntry pd = PIPE_DATA_ENTRY__INIT;
	ProtobufCMessage *msg;
	struct cr_img *img;
	char buf[16];
	int fd;

	CHECK(img_open(dirfd, IMG_PIPES_DATA, 0, O_WRONLY, &img) == 0, "");
	pd.pipe_id = 7;
	pd.bytes = 5;
	CHECK(img_write_entry(img, &pd.base) == 0, "");
	fd = img_raw_fd(img);
	CHECK(fd >= 0 && write(fd, "hello", 5) == 5, "");
	pd.pipe_id = 8;
	pd.bytes = 3;
	CHECK(img_write_entry(img, &pd.base) == 0, "");
	fd = img_raw_fd(img);
	CHECK(fd >= 0 && write(fd, "abc", 3) == 3, "");
	CHECK(img_close(img) == 0, "");

	CHECK(img_open(dirfd, IMG_PIPES_DATA, 0, O_RDONLY, &img) == 0, "");
	CHECK(img_read_entry(img, &pipe_data_entry__descriptor, &msg) == 1, "");
	CHECK(((PipeDataEntry *)msg)->pipe_id == 7, "");
	protobuf_c_message_free_unpacked(msg, NULL);
	CHECK(read(img_raw_fd(img), buf, 5) == 5 && !memcmp(buf, "hello", 5), "");
	CHECK(img_read_entry(img, &pipe_data_entry__descriptor, &msg) == 1, "");
	CHECK(((PipeDataEntry *)msg)->pipe_id == 8, "");
	protobuf_c_message_free_unpacked(msg, NULL);
	CHECK(lseek(img_raw_fd(img), 3, SEEK_CUR) > 0, "");
	CHECK(img_offset(img) == file_size(dirfd, "pipes-data.img"), "");
	CHECK(img_read_entry(img, &pipe_data_entry__descriptor, &msg) == 0, "");
	img_close(img);
	return 0;
}

static int test_version1_magic(int dirfd)
{
	/* type magic alone, then an empty record */
	uint32_t buf[2] = { SECCOMP_MAGIC, 0 };
	ProtobufCMessage *msg;

	CHECK(write_file(dirfd, "seccomp.img", buf, 8) == 0, "");
	CHECK(img_read_one(dirfd, IMG_SECCOMP, 0, &seccomp_entry__descriptor, &msg) == 0, "");
	CHECK(((SeccompEntry *)msg)->n_seccomp_filters == 0, "");
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}

/* ---- read errors ------------------------------------------------------ */

static int test_missing(int dirfd)
{
	ProtobufCMessage *msg;
	struct capture c;
	struct cr_img *img;
	int ret;

	capture_start(&c);
	ret = img_open(dirfd, IMG_FS, 12, O_RDONLY, &img);
	CHECK(ret == -ENOENT && !capture_end(&c)[0], "ret %d, said '%s'", ret, c.text);

	capture_start(&c);
	ret = img_read_one(dirfd, IMG_FS, 12, &core_entry__descriptor, &msg);
	CHECK(ret == -ENOENT && strstr(capture_end(&c), "fs-12.img: missing"),
	      "ret %d, said '%s'", ret, c.text);
	return 0;
}

static int test_read_one_counts(int dirfd)
{
	ProtobufCMessage *msg;
	struct capture c;
	int ret;

	CHECK(write_pstree(dirfd, 2, 1) == 0, "");
	capture_start(&c);
	ret = img_read_one(dirfd, IMG_PSTREE, 0, &pstree_entry__descriptor, &msg);
	CHECK(ret == -EBADMSG &&
	      strstr(capture_end(&c), "pstree.img: more than one entry (another one at offset"),
	      "ret %d, said '%s'", ret, c.text);

	CHECK(write_pstree(dirfd, 0, 1) == 0, "");
	capture_start(&c);
	ret = img_read_one(dirfd, IMG_PSTREE, 0, &pstree_entry__descriptor, &msg);
	CHECK(ret == -EBADMSG && strstr(capture_end(&c), "pstree.img: no entry in the image"),
	      "ret %d, said '%s'", ret, c.text);
	return 0;
}

/* core.img of one record whose task comm is @len bytes: its file size. */
static off_t write_core_comm(int dirfd, char *comm, size_t len)
{
	TaskCoreEntry tc = TASK_CORE_ENTRY__INIT;
	CoreEntry core = CORE_ENTRY__INIT;
	struct cr_img *img;
	int ret;

	memset(comm, 'a' + len % 26, len);
	comm[len] = '\0';
	tc.comm = comm;
	core.mtype = CORE_ENTRY__MARCH__X86_64;
	core.tc = &tc;
	ret = img_open(dirfd, IMG_CORE, 1, O_WRONLY, &img);
	if (ret)
		return ret;
	ret = img_write_entry(img, &core.base);
	ret = img_close(img) ?: ret;
	return ret ? ret : file_size(dirfd, "core-1.img");
}

/*
 * The read buffer is a byte larger than a file below 64 KiB, whose end is
 * then taken from that one short read: every size around 512 (the least
 * buffer) and 64 KiB (the largest) reads its one record, and no second.
 */
static int test_sizes_near_the_buffer(int dirfd)
{
	static const size_t from[] = { 470, 65470 }, to[] = { 560, 65560 };
	static char comm[65600];

	for (size_t r = 0; r < 2; r++) {
		for (size_t len = from[r]; len <= to[r]; len++) {
			ProtobufCMessage *msg;
			off_t size = write_core_comm(dirfd, comm, len);
			int ret;

			CHECK(size > 0, "comm of %zu bytes: %lld", len, (long long)size);
			ret = img_read_one(dirfd, IMG_CORE, 1, &core_entry__descriptor, &msg);
			CHECK(ret == 0, "file of %lld bytes: %d", (long long)size, ret);
			CHECK(!strcmp(((CoreEntry *)msg)->tc->comm, comm), "file of %lld bytes",
			      (long long)size);
			protobuf_c_message_free_unpacked(msg, NULL);
		}
	}
	return 0;
}

/* Append pstree.img's records (after its magic) from @rec, @len bytes. */
static int append_records(int dirfd, const char *rec, size_t len)
{
	int fd = openat(dirfd, "pstree.img", O_WRONLY | O_APPEND);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, rec, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* Records appended after the open (whose first read ended at the size it
 * took) are not looked at: the image is the one that was opened. */
static int test_grown_after_open(int dirfd)
{
	ProtobufCMessage *msg;
	struct cr_img *img;
	char rec[4096];
	ssize_t n;
	int fd;

	CHECK(write_pstree(dirfd, 2, 1) == 0, "");
	fd = openat(dirfd, "pstree.img", O_RDONLY);
	CHECK(fd >= 0, "");
	n = pread(fd, rec, sizeof(rec), 8);
	close(fd);
	CHECK(n > 0, "");

	CHECK(write_pstree(dirfd, 1, 1) == 0, "");
	CHECK(img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img) == 0, "");
	CHECK(append_records(dirfd, rec, n) == 0, "");
	CHECK(img_read_entry(img, &pstree_entry__descriptor, &msg) == 1, "");
	protobuf_c_message_free_unpacked(msg, NULL);
	CHECK(img_read_entry(img, &pstree_entry__descriptor, &msg) == 0, "");
	img_close(img);
	return 0;
}

/* Read pstree.img to the end; the first error's return value. */
static int read_all_pstree(int dirfd, unsigned *nr)
{
	ProtobufCMessage *msg;
	struct cr_img *img;
	int ret;

	*nr = 0;
	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	if (ret)
		return ret;
	while ((ret = img_read_entry(img, &pstree_entry__descriptor, &msg)) == 1) {
		protobuf_c_message_free_unpacked(msg, NULL);
		(*nr)++;
	}
	img_close(img);
	return ret;
}

static int test_truncated(int dirfd)
{
	struct capture c;
	char expect[128];
	off_t size, rec;
	unsigned nr;
	int ret;

	/* three equal records after the 8 magic bytes */
	CHECK(write_pstree(dirfd, 3, 2) == 0, "");
	size = file_size(dirfd, "pstree.img");
	rec = (size - 8) / 3;

	/* inside the third record's payload */
	CHECK(truncate_file(dirfd, "pstree.img", size - 1) == 0, "");
	snprintf(expect, sizeof(expect), "pstree.img: truncated entry at offset %lld\n",
		 (long long)(8 + 2 * rec));
	capture_start(&c);
	ret = read_all_pstree(dirfd, &nr);
	CHECK(ret == -EBADMSG && nr == 2 && strstr(capture_end(&c), expect),
	      "ret %d nr %u, said '%s'", ret, nr, c.text);

	/* inside the third record's length word */
	CHECK(truncate_file(dirfd, "pstree.img", 8 + 2 * rec + 2) == 0, "");
	capture_start(&c);
	ret = read_all_pstree(dirfd, &nr);
	CHECK(ret == -EBADMSG && nr == 2 && strstr(capture_end(&c), expect),
	      "ret %d nr %u, said '%s'", ret, nr, c.text);

	/* at the record boundary: clean end */
	CHECK(truncate_file(dirfd, "pstree.img", 8 + 2 * rec) == 0, "");
	CHECK(read_all_pstree(dirfd, &nr) == 0 && nr == 2, "");
	return 0;
}

static int test_corrupted(int dirfd)
{
	/* a length word of 5 and bytes that are no valid protobuf */
	uint32_t buf[4] = { IMG_COMMON_MAGIC, PSTREE_MAGIC, 5, 0xffffffff };
	struct capture c;
	unsigned nr;
	int ret;

	CHECK(write_file(dirfd, "pstree.img", buf, 16) == 0, "");
	capture_start(&c);
	ret = read_all_pstree(dirfd, &nr);
	CHECK(ret == -EBADMSG && strstr(capture_end(&c), "pstree.img: truncated entry at offset 8"),
	      "ret %d, said '%s'", ret, c.text);

	buf[2] = 4;
	CHECK(write_file(dirfd, "pstree.img", buf, 16) == 0, "");
	capture_start(&c);
	ret = read_all_pstree(dirfd, &nr);
	CHECK(ret == -EBADMSG && nr == 0 &&
	      strstr(capture_end(&c), "pstree.img: corrupted entry at offset 8\n"),
	      "ret %d, said '%s'", ret, c.text);

	/* valid protobuf lacking the required fields is corrupted too */
	buf[2] = 0;
	CHECK(write_file(dirfd, "pstree.img", buf, 12) == 0, "");
	capture_start(&c);
	ret = read_all_pstree(dirfd, &nr);
	CHECK(ret == -EBADMSG && strstr(capture_end(&c), "pstree.img: corrupted entry at offset 8\n"),
	      "ret %d, said '%s'", ret, c.text);
	return 0;
}

static int test_bad_magic(int dirfd)
{
	uint32_t buf[2] = { IMG_COMMON_MAGIC, MM_MAGIC };
	struct capture c;
	struct cr_img *img;
	int ret;

	CHECK(write_file(dirfd, "pstree.img", buf, 8) == 0, "");
	capture_start(&c);
	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	CHECK(ret == -EBADMSG &&
	      strstr(capture_end(&c), "pstree.img: bad magic 0x57492820 (expected 0x50273030)"),
	      "ret %d, said '%s'", ret, c.text);

	buf[0] = 0x12345678;
	CHECK(write_file(dirfd, "pstree.img", buf, 8) == 0, "");
	capture_start(&c);
	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	CHECK(ret == -EBADMSG &&
	      strstr(capture_end(&c), "pstree.img: bad magic 0x12345678 (expected 0x54564319)"),
	      "ret %d, said '%s'", ret, c.text);

	/* the inventory has no common magic */
	buf[0] = IMG_COMMON_MAGIC;
	buf[1] = INVENTORY_MAGIC;
	CHECK(write_file(dirfd, "inventory.img", buf, 8) == 0, "");
	capture_start(&c);
	ret = img_open(dirfd, IMG_INVENTORY, 0, O_RDONLY, &img);
	CHECK(ret == -EBADMSG &&
	      strstr(capture_end(&c), "inventory.img: bad magic 0x54564319 (expected 0x58313116)"),
	      "ret %d, said '%s'", ret, c.text);

	CHECK(write_file(dirfd, "pstree.img", buf, 2) == 0, "");
	capture_start(&c);
	ret = img_open(dirfd, IMG_PSTREE, 0, O_RDONLY, &img);
	CHECK(ret == -EBADMSG && strstr(capture_end(&c), "pstree.img: truncated magic at offset 0"),
	      "ret %d, said '%s'", ret, c.text);
	return 0;
}

/* A failing write is reported once, with the file, and by img_close(). */
static int test_write_error(int dirfd)
{
	PstreeEntry e = PSTREE_ENTRY__INIT;
	struct capture c;
	int ret;

	if (access("/dev/full", W_OK))
		return 0;
	CHECK(symlinkat("/dev/full", dirfd, "pstree.img") == 0, "");
	capture_start(&c);
	ret = img_write_one(dirfd, IMG_PSTREE, 0, &e.base);
	CHECK(ret == -ENOSPC && strstr(capture_end(&c), "pstree.img: can't write"),
	      "ret %d, said '%s'", ret, c.text);
	CHECK(!strstr(strstr(c.text, "can't write") + 1, "can't write"), "logged twice");
	return 0;
}

static int test_type_from_name(int dirfd)
{
	enum img_type t;
	unsigned long id;

	CHECK(img_type_from_name("core-42.img", &t, &id) == 0 && t == IMG_CORE && id == 42, "");
	CHECK(img_type_from_name("pagemap-7.img", &t, &id) == 0 && t == IMG_PAGEMAP && id == 7, "");
	CHECK(img_type_from_name("pagemap-shmem-9.img", &t, &id) == 0 &&
	      t == IMG_PAGEMAP_SHMEM && id == 9, "");
	CHECK(img_type_from_name("inventory.img", &t, NULL) == 0 && t == IMG_INVENTORY, "");
	CHECK(img_type_from_name("stats-dump", &t, NULL) == 0 && t == IMG_STATS_DUMP, "");
	CHECK(img_type_from_name("timens-0.img", &t, &id) == 0 && t == IMG_TIMENS && id == 0, "");
	CHECK(img_type_from_name("pages-1.img", &t, NULL) == -ENOENT, "");
	CHECK(img_type_from_name("core-.img", &t, NULL) == -ENOENT, "");
	CHECK(img_type_from_name("core-1x.img", &t, NULL) == -ENOENT, "");
	CHECK(img_type_from_name("core-1.img.bak", &t, NULL) == -ENOENT, "");
	CHECK(img_type_from_name("lazy-pages.socket", &t, NULL) == -ENOENT, "");
	CHECK(img_type_from_name("core-99999999999999999999999.img", &t, NULL) == -ENOENT, "");
	/* CRIU numbers ghost files in hex */
	CHECK(img_type_from_name("ghost-file-1a.img", &t, &id) == 0 && t == IMG_GHOST_FILE &&
	      id == 0x1a, "");
	CHECK(img_type_from_name("ghost-file-1g.img", &t, NULL) == -ENOENT, "");
	CHECK(img_type_from_name("remap-fpath.img", &t, NULL) == 0 && t == IMG_REMAP_FPATH, "");
	{
		char name[IMG_NAME_MAX];

		CHECK(img_format_name(IMG_GHOST_FILE, 0x1a, name, sizeof(name)) == 0 &&
		      !strcmp(name, "ghost-file-1a.img"), "%s", name);
	}
	return 0;
}

static const struct test_case cases[] = {
	{ "core entry round trip",		test_core_roundtrip },
	{ "magic words per image kind",		test_magic_words },
	{ "many records, clean EOF",		test_many_records },
	{ "record larger than the buffer",	test_big_record },
	{ "raw data after records",		test_raw_data },
	{ "img_version 1 magic accepted",	test_version1_magic },
	{ "missing image",			test_missing },
	{ "img_read_one wants one record",	test_read_one_counts },
	{ "truncated record",			test_truncated },
	{ "one record at every size near the buffer's", test_sizes_near_the_buffer },
	{ "records appended after the open",	test_grown_after_open },
	{ "corrupted record",			test_corrupted },
	{ "bad magic",				test_bad_magic },
	{ "write error reported once",		test_write_error },
	{ "image type from file name",		test_type_from_name },
};

int main(void)
{
	return run_cases("test_images", cases, sizeof(cases) / sizeof(cases[0]));
}
