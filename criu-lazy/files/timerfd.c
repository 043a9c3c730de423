/*
 * timerfd (FD_TYPES__TIMERFD): clock, settime flags, the time left and the
 * interval, and the expirations not read yet ("ticks"), all from fdinfo.
 *
 * Restore: the timer is armed with the time that was left (as an absolute
 * time on its clock for a TFD_TIMER_ABSTIME timer, so CANCEL_ON_SET still
 * works), then the unread ticks are put back with TFD_IOC_SET_TICKS, which
 * setting the timer would have cleared.  Time spent between dump and
 * restore does not count, as with CRIU.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/log.h"
#include "dump/dump.h"
#include "files/fd-kind.h"
#include "restore/restore.h"
#include "restore/child.h"

#include "timerfd.pb-c.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

#define NSEC_PER_SEC 1000000000ULL

static bool tfd_match(const struct dump_ctx *ctx, const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[timerfd]");
}

static int tfd_dump(struct dump_ctx *ctx, const struct fd_probe *p, struct dump_file *f)
{
	TimerfdEntry *e = calloc(1, sizeof(*e));
	const char *clk, *ticks, *sflags, *val, *ival;
	unsigned long long vs, vns, is, ins;

	if (!e)
		return -ENOMEM;
	f->priv = e;
	timerfd_entry__init(e);
	clk = proc_status_field(p->fdinfo, "clockid");
	ticks = proc_status_field(p->fdinfo, "ticks");
	sflags = proc_status_field(p->fdinfo, "settime flags");
	val = proc_status_field(p->fdinfo, "it_value");
	ival = proc_status_field(p->fdinfo, "it_interval");
	if (!clk || !ticks || !sflags || !val || !ival ||
	    sscanf(val, "(%llu, %llu)", &vs, &vns) != 2 ||
	    sscanf(ival, "(%llu, %llu)", &is, &ins) != 2) {
		pr_err("fd %d of task %d (timerfd): its fdinfo lacks the clock, ticks or times",
		       p->fd, p->t->pid);
		return -EIO;
	}
	e->id = f->fe.id;
	e->flags = p->flags & ~O_CLOEXEC;
	e->fown = &f->fown;
	e->clockid = strtoul(clk, NULL, 10);
	e->ticks = strtoull(ticks, NULL, 10);
	e->settime_flags = strtoul(sflags, NULL, 8);
	e->vsec = vs;
	e->vnsec = vns;
	e->isec = is;
	e->insec = ins;
	f->fe.tfd = e;
	pr_debug("task %d: fd %d timerfd clock %u left %llu.%09llu interval %llu.%09llu ticks %llu",
		 p->t->pid, p->fd, e->clockid, vs, vns, is, ins, (unsigned long long)e->ticks);
	return dump_fown(p->t, p->fd, &f->fown);
}

static void tfd_dump_free(struct dump_file *f)
{
	free(f->priv);
}

static int tfd_check(const struct opts *o, struct rst_images *ri, struct rst_fd *f)
{
	const TimerfdEntry *e = f->fe->tfd;

	if (!e || e->id != f->fe->id) {
		pr_err("files.img: timerfd %u has no or a mismatching timerfd entry", f->fe->id);
		return -EINVAL;
	}
	if (e->vnsec >= NSEC_PER_SEC || e->insec >= NSEC_PER_SEC) {
		pr_err("files.img: timerfd %u: nanoseconds out of range (%llu, %llu)", e->id,
		       (unsigned long long)e->vnsec, (unsigned long long)e->insec);
		return -EINVAL;
	}
	return 0;
}

static int tfd_arm(struct rst_child *c, int fd, const TimerfdEntry *e)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = e->vsec, .tv_nsec = e->vnsec },
		.it_interval = { .tv_sec = e->isec, .tv_nsec = e->insec },
	};
	int flags = e->settime_flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);

	/* a periodic timer caught at its expiry: due now, not disarmed */
	if (!its.it_value.tv_sec && !its.it_value.tv_nsec && (e->isec || e->insec))
		its.it_value.tv_nsec = 1;
	if ((flags & TFD_TIMER_ABSTIME) && (its.it_value.tv_sec || its.it_value.tv_nsec)) {
		struct timespec now;

		if (clock_gettime(e->clockid, &now))
			return child_err(c, errno, "timerfd %u of task %d: clock %u: %s", e->id,
					 c->ri->pid, e->clockid, strerror(errno));
		its.it_value.tv_sec += now.tv_sec;
		its.it_value.tv_nsec += now.tv_nsec;
		if (its.it_value.tv_nsec >= (long)NSEC_PER_SEC) {
			its.it_value.tv_nsec -= NSEC_PER_SEC;
			its.it_value.tv_sec++;
		}
	}
	if (timerfd_settime(fd, flags, &its, NULL))
		return child_err(c, errno, "timerfd %u of task %d: settime: %s", e->id, c->ri->pid,
				 strerror(errno));
	if (e->ticks && ioctl(fd, TFD_IOC_SET_TICKS, &e->ticks))
		return child_err(c, errno, "timerfd %u of task %d: %llu unread ticks: %s", e->id,
				 c->ri->pid, (unsigned long long)e->ticks, strerror(errno));
	return 0;
}

static int tfd_open(struct rst_child *c, const struct rst_fd *f)
{
	const TimerfdEntry *e = f->fe->tfd;
	int fd;

	fd = timerfd_create(e->clockid, TFD_CLOEXEC | (e->flags & O_NONBLOCK));
	if (fd < 0)
		return child_err(c, errno, "timerfd %u (fd %d of task %d) on clock %u: %s", e->id,
				 f->fd, c->ri->pid, e->clockid, strerror(errno));
	if (tfd_arm(c, fd, e)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

const struct fd_kind_ops fd_kind_timerfd = {
	.name = "timerfd",
	.type = FD_TYPES__TIMERFD,
	.stage = FD_STAGE_OPEN,
	.match = tfd_match,
	.dump = tfd_dump,
	.dump_free = tfd_dump_free,
	.check = tfd_check,
	.open = tfd_open,
};
