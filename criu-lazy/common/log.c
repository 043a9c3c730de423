/*
 * One log per process run.  The command name (dump, restore, ...) prefixes
 * every error line on stderr so a user sees at once which step failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mono-time.h"

struct log_state {
	const char *command;
	int level;
	int fd;		/* log file, or -1 for stderr only */
	int err_fd;	/* where "stderr" lines go (log_move_above) */
	int64_t start_ns;	/* mono_ns() at log_init(): lines say the time since */
	bool hold;		/* log_hold_errors(): stderr lines kept back */
	char held[2048];	/* the first error line kept back, "" for none */
};

static __thread bool log_quiet;

static struct log_state log_state = {
	.command = "criu-lazy",
	.level = LOG_DEFAULT_LEVEL,
	.fd = -1,
	.err_fd = STDERR_FILENO,
};

int log_init(const char *command, int level, const char *path)
{
	log_state.command = command;
	log_state.level = level;
	log_state.start_ns = mono_ns();
	if (!path)
		return 0;

	log_state.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (log_state.fd < 0) {
		fprintf(stderr, "%s: cannot open log file %s: %m\n", command, path);
		return -errno;
	}
	return 0;
}

static int dup_above(int *fd, int base, bool keep)
{
	int nfd;

	if (*fd < 0 || *fd >= base)
		return 0;
	nfd = fcntl(*fd, F_DUPFD_CLOEXEC, base);
	if (nfd < 0)
		return -errno;
	if (!keep)
		close(*fd);
	*fd = nfd;
	return 0;
}

void log_fini(void)
{
	if (log_state.fd >= 0)
		close(log_state.fd);
	log_state.fd = -1;
}

/*
 * A restored task's C part closes every fd it inherited and opens its own
 * at the dumped numbers: the log (and a dup of our stderr, which is about
 * to become the task's fd 2) move to @base or above, close-on-exec, out
 * of the task's way.  log_fds() tells which fds to keep.
 */
/* @keep: the old fds stay open (another process sharing our descriptor
 * table still writes to them; it moves its own later). */
int log_move_above(int base, bool keep)
{
	int err = dup_above(&log_state.fd, base, keep);

	if (!err && log_state.err_fd == STDERR_FILENO) {
		int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, base);

		if (fd < 0 && errno != EBADF)
			return -errno;
		log_state.err_fd = fd;	/* -1: we had no stderr, nor will */
	}
	return err;
}

void log_fds(int *file, int *err)
{
	*file = log_state.fd;
	*err = log_state.err_fd;
}

static const char *level_tag(enum log_level level)
{
	switch (level) {
	case LOG_ERROR: return "Error";
	case LOG_WARN:  return "Warn ";
	case LOG_INFO:  return "Info ";
	default:        return "Debug";
	}
}

/* Write the whole buffer; a log must not lose the tail of a line. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void log_printf(enum log_level level, const char *fmt, ...)
{
	char msg[2048], line[2200];
	va_list args;
	int saved_errno = errno;
	int len;

	if (log_quiet || ((int)level > log_state.level && level != LOG_ERROR))
		return;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	len = strlen(msg);
	while (len && msg[len - 1] == '\n')
		msg[--len] = '\0';

	if (log_state.fd >= 0) {
		double t = (mono_ns() - log_state.start_ns) / 1e9;

		len = snprintf(line, sizeof(line), "(%9.6f) %d %s: %s\n", t,
			       getpid(), level_tag(level), msg);
		write_all(log_state.fd, line, len);
	}

	if (level == LOG_ERROR && log_state.hold) {
		if (!log_state.held[0])
			snprintf(log_state.held, sizeof(log_state.held), "%s", msg);
	} else if (level == LOG_ERROR || log_state.fd < 0) {
		len = snprintf(line, sizeof(line), "%s: %s\n", log_state.command, msg);
		write_all(log_state.err_fd, line, len);
	}
	errno = saved_errno;
}

void log_quiet_thread(void)
{
	log_quiet = true;
}

bool log_quiet_set(bool quiet)
{
	bool was = log_quiet;

	log_quiet = quiet;
	return was;
}

void log_hold_errors(void)
{
	log_state.hold = true;
}

const char *log_held_error(void)
{
	return log_state.held[0] ? log_state.held : NULL;
}

void log_release_errors(bool drop)
{
	char line[2200];
	int len;

	log_state.hold = false;
	if (log_state.held[0] && !drop) {
		len = snprintf(line, sizeof(line), "%s: %s\n", log_state.command, log_state.held);
		write_all(log_state.err_fd, line, len);
	}
	log_state.held[0] = '\0';
}
