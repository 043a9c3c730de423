/*
 * The tools CRIU runs for a namespace: iproute2's ip for its addresses,
 * routes and rules ("ip addr save" writes the kernel's own RTM_NEWADDR
 * messages behind a magic word, "ip addr restore" sends them again, and
 * those files are CRIU's ifaddr/route/rule images byte for byte), and
 * iptables-save/-restore, nft for its firewall.  Run in our current
 * netns, never through a shell, with a timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/mono-time.h"
#include "net/netns.h"

#define IP_TIMEOUT_MS	30000
#define TOOL_MAX_ARGS	10

bool net_tool_found(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? path : ".", name);
		if (!access(buf, X_OK))
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static void describe(const char *const argv[], char *buf, size_t size)
{
	size_t len = snprintf(buf, size, "%s", argv[0]);

	for (int i = 1; argv[i] && len < size; i++)
		len += snprintf(buf + len, size - len, " %s", argv[i]);
}

/* The child's end: fds in place, then exec. */
static void run_child(const char *const args[], int in_fd, int out_fd, int err_fd)
{
	char *argv[TOOL_MAX_ARGS + 1] = { NULL };
	int null = open("/dev/null", O_RDWR);

	for (int i = 0; i < TOOL_MAX_ARGS && args[i]; i++)
		argv[i] = (char *)args[i];
	dup2(in_fd >= 0 ? in_fd : null, 0);
	dup2(out_fd >= 0 ? out_fd : null, 1);
	dup2(err_fd, 2);
	execvp(argv[0], argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int ip_tool_run(const char *const args[], int in_fd, int out_fd)
{
	const char *argv[TOOL_MAX_ARGS + 1] = { "ip" };

	for (int i = 0; i < TOOL_MAX_ARGS - 1 && args[i]; i++)
		argv[i + 1] = args[i];
	return net_tool_run(argv, in_fd, out_fd);
}

int net_tool_run(const char *const args[], int in_fd, int out_fd)
{
	char what[128], why[256] = "";
	int err[2], status = 0;
	int64_t t0;
	ssize_t n;
	pid_t pid;

	describe(args, what, sizeof(what));
	if (pipe2(err, O_CLOEXEC)) {
		pr_perror("%s: pipe", what);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		pr_perror("%s: fork", what);
		close(err[0]);
		close(err[1]);
		return -EIO;
	}
	if (pid == 0)
		run_child(args, in_fd, out_fd, err[1]);
	close(err[1]);
	t0 = mono_ms();
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (mono_ms() - t0 > IP_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(err[0]);
			pr_err("%s: no answer in %d s", what, IP_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
	n = read(err[0], why, sizeof(why) - 1);
	close(err[0]);
	why[n > 0 ? n : 0] = '\0';
	why[strcspn(why, "\n")] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	pr_err("%s failed (%s %d)%s%s", what,
	       WIFEXITED(status) ? "exit status" : "signal",
	       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
	       why[0] ? ": " : "", why);
	return -EIO;
}
