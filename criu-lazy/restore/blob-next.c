/*
 * Which process of the tree to look at next, among those whose restorer
 * blob the restore process still waits for: the first one that has
 * something to report (stopped, exited, wrote its error line or, at the
 * lazy handover, sent its uffd).
 *
 * All the blobs of a tree run at once.  Waiting for them in the order of
 * the tree made the news of the quick ones (a uffd to hand over, a blob
 * ended and waiting for its last ptrace steps) wait for the slower ones
 * before them; taken as they come, the restore process works on one task
 * while the others still run.
 *
 * waitid(WNOWAIT) only looks: rst_task_wait_blob() then takes the stop
 * and does the rest, as for one process.  A process whose blob closed its
 * error pipe (it does so before its last stop) is watched by its stop
 * alone; one at that point for longer than BLOB_STOP_TIMEOUT_MS is handed
 * over anyway, and rst_task_wait_blob() reports the timeout.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "common/mono-time.h"
#include "common/ptrace-inject.h"
#include "restore/restore.h"
#include "restore/tree.h"

#define POLL_MS			100	/* a safety net: SIGCHLD wakes us */
#define BLOB_STOP_TIMEOUT_MS	10000

/* Stopped or gone (its status stays there for the real wait)? */
bool rst_task_has_status(pid_t pid)
{
	siginfo_t si = { .si_pid = 0 };

	if (waitid(P_PID, pid, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WALL))
		return true;	/* gone already: the real wait says so */
	return si.si_pid == pid;
}

static int by_fd(const struct rst_tree *tree, int fd, bool *uffd)
{
	for (size_t i = 0; i < tree->nr; i++) {
		*uffd = tree->procs[i].t.uffd_rx == fd;
		if (tree->procs[i].t.err_r == fd || *uffd)
			return (int)i;
	}
	return -1;
}

int rst_blob_next(struct rst_tree *tree, struct rst_blob_wait *w)
{
	struct pollfd *pfd = calloc(2 * tree->nr + 1, sizeof(*pfd));
	int ret = -ENOENT, chld;
	sigset_t old;

	if (!pfd)
		return -ENOMEM;
	chld = sigchld_fd_open(&old);
	for (;;) {
		int64_t now = mono_ms();
		nfds_t n = 0;

		/* after SIGCHLD is blocked: a stop from now on wakes the poll */
		for (size_t i = 0; i < tree->nr; i++) {
			if (!w->pending[i])
				continue;
			if (rst_task_has_status(tree->procs[i].t.pid) ||
			    (w->eof_at[i] && now - w->eof_at[i] > BLOB_STOP_TIMEOUT_MS)) {
				ret = (int)i;
				goto out;
			}
			if (!w->eof_at[i])
				pfd[n++] = (struct pollfd){ .fd = tree->procs[i].t.err_r,
							    .events = POLLIN };
			if (w->uffd && tree->procs[i].t.uffd_rx >= 0)
				pfd[n++] = (struct pollfd){ .fd = tree->procs[i].t.uffd_rx,
							    .events = POLLIN };
		}
		if (!w->left)
			goto out;
		if (chld >= 0)
			pfd[n++] = (struct pollfd){ .fd = chld, .events = POLLIN };
		if (poll(pfd, n, POLL_MS) <= 0)
			continue;
		sigchld_fd_drain(chld);
		for (nfds_t k = 0; k < n; k++) {
			bool uffd = false;
			int idx = pfd[k].fd == chld ? -1 : by_fd(tree, pfd[k].fd, &uffd);

			if (idx < 0 || !pfd[k].revents)
				continue;
			/* its error line, or its uffd (or that socket's end: the
			 * caller then looks at the blob) */
			if ((pfd[k].revents & POLLIN) || uffd) {
				ret = idx;
				goto out;
			}
			w->eof_at[idx] = now;	/* HUP alone: the blob closed the pipe */
		}
	}
out:
	sigchld_fd_close(chld, &old);
	free(pfd);
	if (ret >= 0) {
		w->pending[ret] = false;
		w->left--;
	}
	return ret;
}

/* @idx, just reported, is to be watched again (its uffd handed over, its
 * blob's end still to come). */
void rst_blob_watch_again(struct rst_blob_wait *w, int idx)
{
	w->pending[idx] = true;
	w->left++;
}

/* Every live process not finalized yet, none of them at EOF yet. */
int rst_blob_wait_init(const struct rst_tree *tree, struct rst_blob_wait *w)
{
	w->pending = calloc(tree->nr, sizeof(*w->pending));
	w->eof_at = calloc(tree->nr, sizeof(*w->eof_at));
	w->left = 0;
	if (!w->pending || !w->eof_at) {
		rst_blob_wait_free(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < tree->nr; i++) {
		w->pending[i] = tree->procs[i].kind == RST_PROC_ALIVE && !tree->procs[i].finalized;
		w->left += w->pending[i];
	}
	return 0;
}

void rst_blob_wait_free(struct rst_blob_wait *w)
{
	free(w->pending);
	free(w->eof_at);
	w->pending = NULL;
	w->eof_at = NULL;
}
