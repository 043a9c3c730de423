/*
 * SysV message queues and semaphore sets of the tree's IPC namespace
 * (ipc-ns.c enters it), in CRIU's formats:
 *   ipcns-msg-<ns>.img  per queue an ipc_msg_entry (desc, qbytes, qnum), then
 *                       its qnum messages in queue order, each a framed
 *                       ipc_msg (mtype, msize) and msize bytes padded to 8;
 *                       read with msgrcv(MSG_COPY), which leaves the queue
 *                       as it is
 *   ipcns-sem-<ns>.img  per set an ipc_sem_entry (desc, nsems), then its
 *                       values (GETALL, u16 each) padded to 8 bytes
 * Semaphore undo (SEM_UNDO) adjustments of the tasks are not saved (CRIU
 * does not either).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/sem.h>

#include "common/log.h"
#include "dump/dump.h"

#include "ipc-msg.pb-c.h"
#include "ipc-sem.pb-c.h"

#ifndef MSG_COPY
#define MSG_COPY	040000
#endif

static int write_padded(struct cr_img *img, const void *data, size_t len, const char *what,
			int id)
{
	static const char zeros[8];
	size_t pad = (8 - len % 8) % 8;
	int ret = img_write_raw(img, data, len);

	if (!ret && pad)
		ret = img_write_raw(img, zeros, pad);
	if (ret)
		pr_err("%s: can't write %s of SysV object %d: %s", img_name(img), what, id,
		       strerror(-ret));
	return ret;
}

/* @msgmax: the namespace's largest message (MSG_INFO) */
static int dump_messages(struct cr_img *img, int id, unsigned long qnum, int msgmax)
{
	struct { long mtype; char mtext[]; } *buf = malloc(sizeof(long) + msgmax);
	int ret = buf ? 0 : -ENOMEM;

	for (unsigned long n = 0; n < qnum && !ret; n++) {
		IpcMsg m = IPC_MSG__INIT;
		ssize_t len = msgrcv(id, buf, msgmax, n, IPC_NOWAIT | MSG_COPY);

		if (len < 0) {
			ret = -errno;
			pr_perror("can't copy message %lu of SysV message queue %d%s", n, id,
				  errno == ENOSYS ? " (a kernel without CONFIG_CHECKPOINT_RESTORE)" : "");
			break;
		}
		m.mtype = buf->mtype;
		m.msize = len;
		ret = img_write_entry(img, &m.base);
		if (!ret)
			ret = write_padded(img, buf->mtext, len, "a message", id);
	}
	free(buf);
	return ret;
}

static int msg_info(void *info, int *nr)
{
	int ret = msgctl(0, MSG_INFO, info);

	*nr = ((struct msginfo *)info)->msgpool;
	return ret;
}

static int msg_stat(int idx, void *buf, IpcDescEntry *d)
{
	struct msqid_ds *ds = buf;
	int id = msgctl(idx, MSG_STAT, ds);

	if (id < 0)
		return dump_ipc_stat_failed("msgctl(MSG_STAT)", idx);
	dump_ipc_desc(d, id, &ds->msg_perm);
	return id;
}

static int msg_dump(struct dump_ctx *ctx, struct cr_img *img, const void *info,
		    const void *buf, IpcDescEntry *d)
{
	const struct msqid_ds *ds = buf;
	IpcMsgEntry e = IPC_MSG_ENTRY__INIT;
	int ret;

	(void)ctx;
	e.desc = d;
	e.qbytes = ds->msg_qbytes;
	e.qnum = ds->msg_qnum;
	ret = img_write_entry(img, &e.base);
	if (!ret)
		ret = dump_messages(img, d->id, ds->msg_qnum,
				    ((const struct msginfo *)info)->msgmax);
	pr_debug("SysV msg queue %d: key %#x mode %#o %lu messages", d->id, d->key, d->mode,
		 (unsigned long)ds->msg_qnum);
	return ret;
}

static int sem_info(void *info, int *nr)
{
	int ret = semctl(0, 0, SEM_INFO, info);

	*nr = ((struct seminfo *)info)->semusz;
	return ret;
}

static int sem_stat(int idx, void *buf, IpcDescEntry *d)
{
	struct semid_ds *ds = buf;
	int id = semctl(idx, 0, SEM_STAT, ds);

	if (id < 0)
		return dump_ipc_stat_failed("semctl(SEM_STAT)", idx);
	dump_ipc_desc(d, id, &ds->sem_perm);
	return id;
}

static int sem_dump(struct dump_ctx *ctx, struct cr_img *img, const void *info,
		    const void *buf, IpcDescEntry *d)
{
	const struct semid_ds *ds = buf;
	IpcSemEntry e = IPC_SEM_ENTRY__INIT;
	unsigned short *vals;
	int ret = 0;

	(void)ctx;
	(void)info;
	e.desc = d;
	e.nsems = ds->sem_nsems;
	vals = calloc(e.nsems ? e.nsems : 1, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (semctl(d->id, 0, GETALL, vals) < 0) {
		ret = -errno;
		pr_perror("semctl(GETALL) of SysV semaphore set %u", d->id);
	}
	if (!ret)
		ret = img_write_entry(img, &e.base);
	if (!ret)
		ret = write_padded(img, vals, e.nsems * sizeof(*vals), "the values", d->id);
	free(vals);
	pr_debug("SysV sem set %u: key %#x mode %#o %u semaphores", d->id, d->key, d->mode,
		 e.nsems);
	return ret;
}

static const struct dump_ipc_kind queues = {
	.what = "SysV message queues",
	.info_call = "msgctl(MSG_INFO)",
	.img = IMG_IPCNS_MSG,
	.info = msg_info,
	.stat = msg_stat,
	.dump = msg_dump,
};

static const struct dump_ipc_kind sets = {
	.what = "SysV semaphore sets",
	.info_call = "semctl(SEM_INFO)",
	.img = IMG_IPCNS_SEM,
	.info = sem_info,
	.stat = sem_stat,
	.dump = sem_dump,
};

int dump_ipc_msg_sem(struct dump_ctx *ctx, uint32_t ns_id)
{
	int ret = dump_ipc_objects(ctx, ns_id, &queues);

	return ret ? ret : dump_ipc_objects(ctx, ns_id, &sets);
}
