#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "mm.pb-c.h"
#include "pstree.pb-c.h"
#include "vma.pb-c.h"
#include "fuzz-util.h"

static const char dir_path[] = "/img";
static int dir_fd = -1;
static int real_root = -1, real_cwd = -1, sandbox_root = -1;

static void __attribute__((noreturn)) die(const char *what)
{
	perror(what);
	abort();
}

/*
 * Images name paths (files to reopen, ghost files to make again), and a
 * fuzzed path may be any file of the machine: opening a device can have
 * effects of its own.  So each target runs chrooted into a scratch
 * directory of its own ($CRIU_LAZY_FUZZ_DIR, which scripts/fuzz makes and
 * removes), in a mount namespace of its own with /proc mounted in it (the
 * mount goes away with the process).  Root only.  The chroot lasts for
 * one input only (fuzz_enter .. fuzz_leave): libFuzzer itself reads and
 * writes its corpus by the real paths.
 */
/* mkdir -p of @path (absolute) */
static void make_path(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(buf, 0755);
		*p = '/';
	}
	mkdir(buf, 0755);
}

/*
 * libFuzzer writes a crashing input where the crash happens: inside the
 * chroot.  The directory it writes to ($CRIU_LAZY_FUZZ_ARTIFACTS, given
 * by scripts/fuzz with -artifact_prefix) is bound at the same path inside.
 */
static void bind_artifacts(const char *top)
{
	const char *dir = getenv("CRIU_LAZY_FUZZ_ARTIFACTS");
	char inside[PATH_MAX];

	if (!dir || dir[0] != '/')
		return;
	snprintf(inside, sizeof(inside), "%s%s", top, dir);
	make_path(inside);
	if (mount(dir, inside, NULL, MS_BIND, NULL))
		die("fuzz: bind the artifact directory into the scratch directory");
}

static void make_sandbox(void)
{
	const char *top = getenv("CRIU_LAZY_FUZZ_DIR");
	char proc[PATH_MAX];

	if (!top || !*top) {
		fprintf(stderr, "fuzz: CRIU_LAZY_FUZZ_DIR must name an empty scratch directory "
			"(scripts/fuzz sets it)\n");
		abort();
	}
	if (unshare(CLONE_NEWNS))
		die("fuzz: unshare(CLONE_NEWNS) (run as root)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die("fuzz: make the mounts private");
	snprintf(proc, sizeof(proc), "%s/proc", top);
	if ((mkdir(proc, 0755) && errno != EEXIST) || mount("proc", proc, "proc", 0, NULL))
		die("fuzz: mount /proc in the scratch directory");
	bind_artifacts(top);
	real_root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	real_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sandbox_root = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (real_root < 0 || real_cwd < 0 || sandbox_root < 0)
		die("fuzz: open the real and the scratch root");
	if ((mkdirat(sandbox_root, dir_path + 1, 0700) && errno != EEXIST))
		die("fuzz: make /img");
}

void fuzz_enter(void)
{
	if (fchdir(sandbox_root) || chroot(".") || chdir("/"))
		die("fuzz: chroot into the scratch directory");
}

void fuzz_leave(void)
{
	if (fchdir(real_root) || chroot(".") || fchdir(real_cwd))
		die("fuzz: leave the scratch directory");
}

void fuzz_init(void)
{
	int null;

	if (dir_fd >= 0)
		return;
	/* errors still reach stderr, which scripts/fuzz closes (-close_fd_mask) */
	log_init("fuzz", LOG_ERROR, NULL);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);	/* show's JSON */
		close(null);
	}
	make_sandbox();
	dir_fd = openat(sandbox_root, dir_path + 1, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		die("fuzz: open /img");
}

int fuzz_dir_fd(void)
{
	return dir_fd;
}

const char *fuzz_dir_path(void)
{
	return dir_path;
}

void fuzz_dir_clear(void)
{
	int fd = dup(dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dir_fd, e->d_name, 0);
	closedir(d);
}

int fuzz_write_file(const char *name, const uint8_t *data, size_t size)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = 0;

	if (fd < 0)
		return -errno;
	while (size) {
		ssize_t n = write(fd, data, size);

		if (n <= 0) {
			ret = -EIO;
			break;
		}
		data += n;
		size -= n;
	}
	close(fd);
	return ret;
}

static int name_ok(const uint8_t *name, size_t len)
{
	if (!len || len >= IMG_NAME_MAX || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int fuzz_unpack_set(const uint8_t *data, size_t size)
{
	int files = 0;

	fuzz_dir_clear();
	while (size >= 1) {
		char name[IMG_NAME_MAX];
		size_t name_len = data[0], len;
		uint32_t len32;

		if (size < 1 + name_len + 4 || !name_ok(data + 1, name_len))
			break;
		memcpy(name, data + 1, name_len);
		name[name_len] = '\0';
		memcpy(&len32, data + 1 + name_len, 4);
		data += 1 + name_len + 4;
		size -= 1 + name_len + 4;
		len = len32 < size ? len32 : size;
		if (fuzz_write_file(name, data, len))
			break;
		files++;
		data += len;
		size -= len;
	}
	return files;
}

/* mm-FUZZ_PID.img: one private anonymous VMA over the lazy run and the
 * present page after it (with a hole of 3 pages between them). */
static int write_small_mm(void)
{
	MmEntry mm = MM_ENTRY__INIT;
	VmaEntry vma = VMA_ENTRY__INIT, *vmas[1] = { &vma };

	vma.start = FUZZ_LAZY_ADDR;
	vma.end = FUZZ_LAZY_ADDR + (FUZZ_LAZY_PAGES + 5) * 4096;
	vma.prot = 3;			/* PROT_READ | PROT_WRITE */
	vma.flags = 0x22;		/* MAP_PRIVATE | MAP_ANONYMOUS */
	vma.status = (1 << 0) | (1 << 9);	/* VMA_AREA_REGULAR | VMA_ANON_PRIVATE */
	vma.fd = -1;
	mm.n_vmas = 1;
	mm.vmas = vmas;
	return img_write_one(dir_fd, IMG_MM, FUZZ_PID, &mm.base);
}

int fuzz_write_small_dump(void)
{
	static uint8_t pages[(FUZZ_LAZY_PAGES + 1) * 4096];
	PstreeEntry e = PSTREE_ENTRY__INIT;
	uint32_t threads[1] = { FUZZ_PID };
	struct pagemap_writer *w;
	int ret;

	fuzz_dir_clear();
	e.pid = e.pgid = e.sid = FUZZ_PID;
	e.n_threads = 1;
	e.threads = threads;
	ret = img_write_one(dir_fd, IMG_PSTREE, 0, &e.base);
	if (!ret)
		ret = write_small_mm();
	if (ret)
		return ret;
	for (size_t i = 0; i <= FUZZ_LAZY_PAGES; i++)
		memset(pages + i * 4096, (int)i + 1, 4096);
	ret = pagemap_writer_open(dir_fd, IMG_PAGEMAP, FUZZ_PID, 1, &w);
	if (ret)
		return ret;
	ret = pagemap_writer_add(w, FUZZ_LAZY_ADDR, FUZZ_LAZY_PAGES, PE_PRESENT | PE_LAZY, pages);
	if (!ret)
		ret = pagemap_writer_add(w, FUZZ_LAZY_ADDR + (FUZZ_LAZY_PAGES + 4) * 4096, 1,
					 PE_PRESENT, pages + FUZZ_LAZY_PAGES * 4096);
	return pagemap_writer_close(w) ?: ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	fuzz_enter();
	fuzz_one_input(data, size);
	fuzz_leave();
	return 0;
}
