/*
 * zdtm: the protocol every test program under test/zdtm speaks.
 *
 *   prog --pidfile F --outfile F [test options]
 *
 * A test builds its state, calls test_daemon() (the pidfile appears: "ready,
 * checkpoint me now"), waits for SIGTERM with test_waitsig() (or spins until
 * test_stopped() says so), then checks that everything it built is still
 * there and ends with pass() or fail(), which write "PASS" or "FAIL: why"
 * to the outfile and exit 0 or 1.
 *
 * The library never calls malloc and never holds a file descriptor between
 * calls, so it leaves no trace in the state the tests compare (fd table,
 * heap, memory map).  Messages go to stderr, which the harness points at a
 * log file.
 */
#ifndef ZDTM_ZDTMTST_H
#define ZDTM_ZDTMTST_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PAGE_SIZE 4096UL

/* ------------------------------------------------------------ options */

enum test_opt_type {
	TEST_OPT_STR,	/* const char *        */
	TEST_OPT_INT,	/* long                */
	TEST_OPT_SIZE,	/* size_t, suffix K/M/G (1024-based) accepted */
	TEST_OPT_FLAG,	/* int, set to 1 when present, takes no value */
};

struct test_opt {
	const char *name;	/* without the leading "--" */
	enum test_opt_type type;
	void *val;		/* where the parsed value goes */
	int required;
	const char *help;
};

/*
 * Parse --pidfile, --outfile and the test's own options (opts may be NULL;
 * otherwise an array ended by an entry with name == NULL), and install the
 * SIGTERM handler.  Bad usage prints a message and exits 2.
 */
void test_init(int argc, char **argv, const struct test_opt *opts);

/* Ready: write the pidfile (tmp file + rename, so readers never see half). */
void test_daemon(void);

/*
 * Sleep until SIGTERM has arrived.  Other signals (timers, ...) are handled
 * as they come.  The blocked mask is the same after the call as before it;
 * while waiting it equals the caller's mask (SIGTERM is never blocked by
 * the caller), so a checkpoint taken during the wait sees the test's mask.
 */
void test_waitsig(void);

/*
 * pthread_create() with SIGTERM blocked in the new thread: SIGTERM is the
 * main thread's.  A process-directed signal goes to any thread that does
 * not block it, and one handled on another thread leaves the main thread
 * asleep in test_waitsig() for ever (the kernel passes a sleeping main
 * thread by while it has another signal pending).  0 or an errno.
 */
int test_thread_create(pthread_t *thread, const pthread_attr_t *attr,
		       void *(*fn)(void *), void *arg);

/*
 * Sleep until @flag is set by the caller's own handler of @sig (a child's
 * SIGTERM), with no lost wake-up: `while (!flag) pause();` sleeps for
 * ever when the signal comes between the check and pause() -- and a
 * restored task dumped in pause() executes it again after a handler that
 * ran before it got back to the syscall.  The mask is the same after.
 */
void test_wait_flag(volatile sig_atomic_t *flag, int sig);

/* For tests that spin instead of sleeping: non-zero once SIGTERM arrived. */
int test_stopped(void);
/* The flag itself, for loops written in assembly: an int, 0 until SIGTERM. */
const volatile sig_atomic_t *test_stop_flag(void);

void pass(void) __attribute__((noreturn));
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* A line on stderr prefixed with the test name. */
void test_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *test_name(void);

/*
 * For a program that forks a tree: when it exits (pass(), fail(), exit()),
 * it kills every process below it and reaps them all, so a failed check
 * leaves nothing behind.  Call it in the root; its children skip it.
 */
void test_kill_tree_at_exit(void);

/* ------------------------------------------------------------ fds */

/*
 * Move fd, just made (negative: the call that made it failed, errno says
 * why), to the number at (O_CLOEXEC if cloexec) and close it; fail()s.
 */
void fd_place(int fd, int at, int cloexec);

/* ------------------------------------------------------------ patterns */

/*
 * A position-dependent pseudo-random pattern: byte at offset `off` of a
 * buffer filled with `seed` is pattern_byte(seed, off), so moved, shifted,
 * stale or zeroed data are all caught.
 */
uint8_t pattern_byte(uint64_t seed, size_t off);
void pattern_fill(void *buf, size_t len, uint64_t seed);
/* Offset of the first byte that differs from the pattern, or len if none. */
size_t pattern_find_bad(const void *buf, size_t len, uint64_t seed);
/* fail() naming `what`, the first bad offset, and the bytes found/expected. */
void pattern_expect(const char *what, const void *buf, size_t len, uint64_t seed);
/* The same for bytes [from, to) of a buffer filled from buf with seed. */
void pattern_expect_at(const char *what, const void *buf, size_t from, size_t to, uint64_t seed);
void zero_expect(const char *what, const void *buf, size_t len);

/* ------------------------------------------------------------ /proc */

/*
 * Read a whole file into buf (NUL-terminated; the length is returned).
 * fail()s on error or if the file does not fit.
 */
size_t read_file(const char *path, char *buf, size_t size);
/* Write len bytes of buf to path (created 0644, truncated); fail()s. */
void write_file(const char *path, const void *buf, size_t len);

/*
 * Copy into line the /proc/self/maps line of `maps` whose VMA starts at
 * addr, without the newline.  Returns 0, or -1 if there is none.
 */
int maps_line_at(const char *maps, unsigned long addr, char *line, size_t size);
/*
 * Copy all maps lines of VMAs that lie inside [start, end) into out, one
 * per line; returns the number of lines.
 */
int maps_lines_in(const char *maps, unsigned long start, unsigned long end,
		  char *out, size_t size);
/*
 * Blank the inode column of a maps line when the mapping is shared
 * anonymous memory (its shmem inode is new after a restore).
 */
void maps_line_normalize(char *line);
/*
 * Each VMA of /proc/self/smaps that overlaps [start, end): its maps line
 * (maps_line_normalize()d) and a line "  flags: ..." of its VmFlags but the
 * kernel's bookkeeping ones (sd, ac, um, uw, ui), into out.  fail()s if
 * they do not fit.
 */
void smaps_vmas_record(unsigned long start, unsigned long end, char *out, size_t size);

/* readlink() of path into out, NUL-terminated; fail()s. */
void link_read(const char *path, char *out, size_t size);
/* The same of /proc/self/fd/<fd>. */
void fd_link_read(int fd, char *out, size_t size);

/* What a restore must give an fd back: its /proc link, flags and offset. */
struct fd_snapshot {
	char link[256];
	int getfl, getfd;
	off_t pos;
};
void fd_snapshot_take(int fd, struct fd_snapshot *st);
/* fail() naming the fd and what differs from st. */
void fd_snapshot_expect(int fd, const struct fd_snapshot *st);

/* The ends of pipes and FIFOs: flags, the bytes waiting (FIONREAD), inode. */
struct pipe_end {
	int getfl, getfd, nread;
	ino_t ino;
};
void pipe_ends_record(const int *fds, size_t n, struct pipe_end *s);
/* fail() naming the fd whose flags or waiting bytes (in the `kind`) differ. */
void pipe_ends_expect(const int *fds, size_t n, const struct pipe_end *before,
		      const struct pipe_end *after, const char *kind);

/* Field n (1-based, as in proc(5)) of /proc/self/stat, as a number. */
unsigned long long proc_stat_field(int n);
/* Value of "Key:" in /proc/self/status, copied without leading blanks. */
int proc_status_value(const char *key, char *val, size_t size);

#endif /* ZDTM_ZDTMTST_H */
