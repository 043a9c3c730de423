#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/evloop.h"
#include "common/log.h"

int evloop_stop_signals(int *signal_fd)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	*signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*signal_fd < 0) {
		pr_perror("signalfd");
		return -errno;
	}
	return 0;
}

int evloop_read_signal(int signal_fd)
{
	struct signalfd_siginfo si;

	if (read(signal_fd, &si, sizeof(si)) != sizeof(si))
		return 0;
	return si.ssi_signo;
}

int evloop_watch(int epfd, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
		pr_perror("epoll add fd %d", fd);
		return -errno;
	}
	return 0;
}

void evloop_signal_ready(int status_fd)
{
	char zero = 0;

	if (status_fd < 0)
		return;
	if (write(status_fd, &zero, 1) != 1)
		pr_warn("cannot write to the status fd %d: %m", status_fd);
	close(status_fd);
}

int evloop_daemon_ready(bool background, int status_fd)
{
	if (background) {
		pid_t pid = fork();

		if (pid < 0) {
			pr_perror("fork to the background");
			return -errno;
		}
		if (pid > 0)
			_exit(0);
		setsid();
	}
	evloop_signal_ready(status_fd);
	return 0;
}

