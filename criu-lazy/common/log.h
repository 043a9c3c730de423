/*
 * Logging.  Errors always reach stderr as one line "<command>: <message>"
 * (and the log file, if any); warnings, info and debug messages go to the
 * log file given with -o, or to stderr, depending on the -v level.
 *
 * A file may define LOG_PREFIX (e.g. "pagemap: ") before including this
 * header to tag its messages.
 */
#ifndef CRIU_LAZY_COMMON_LOG_H
#define CRIU_LAZY_COMMON_LOG_H

#include <errno.h>
#include <stdbool.h>

enum log_level {
	LOG_ERROR = 1,
	LOG_WARN = 2,
	LOG_INFO = 3,
	LOG_DEBUG = 4,
};

#define LOG_DEFAULT_LEVEL LOG_WARN

#ifndef LOG_PREFIX
#define LOG_PREFIX ""
#endif

int log_init(const char *command, int level, const char *path);
void log_fini(void);
int log_move_above(int base, bool keep);
void log_fds(int *file, int *err);

/*
 * Errors held back from stderr (the log file still gets them at once):
 * for a failure whose consequence the caller states in one line with
 * its cause (the dump's connections lost after a late failure).  Only the
 * first is kept; log_held_error() reads it, log_release_errors() prints
 * it (unless @drop: the caller printed a line that holds it) and stops.
 */
void log_hold_errors(void);
/* Nothing the calling thread logs from now on is written (a helper thread
 * whose failures its caller reports itself). */
void log_quiet_thread(void);
/* The same for a while (until set back to what it returns): work done
 * ahead, whose failure is met again, and said, where it matters. */
bool log_quiet_set(bool quiet);
const char *log_held_error(void);
void log_release_errors(bool drop);

void log_printf(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_err(fmt, ...)   log_printf(LOG_ERROR, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...)  log_printf(LOG_WARN, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...)  log_printf(LOG_INFO, LOG_PREFIX fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) log_printf(LOG_DEBUG, LOG_PREFIX fmt, ##__VA_ARGS__)

/* pr_err with ": <strerror(errno)>" appended; keeps errno intact */
#define pr_perror(fmt, ...)                                                \
	do {                                                               \
		int __saved_errno = errno;                                 \
		log_printf(LOG_ERROR, LOG_PREFIX fmt ": %m", ##__VA_ARGS__); \
		errno = __saved_errno;                                     \
	} while (0)

#endif
