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

static int dump_queues(struct dump_ctx *ctx, uint32_t ns_id)
{
	struct msginfo info;
	struct cr_img *img = NULL;
	int maxidx, ret = 0, seen = 0;

	maxidx = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
	if (maxidx < 0) {
		pr_perror("msgctl(MSG_INFO) in the tree's IPC namespace");
		return -errno;
	}
	for (int idx = 0; idx <= maxidx && !ret; idx++) {
		IpcMsgEntry e = IPC_MSG_ENTRY__INIT;
		IpcDescEntry d = IPC_DESC_ENTRY__INIT;
		struct msqid_ds ds;
		int id = msgctl(idx, MSG_STAT, &ds);

		if (id < 0) {
			if (errno == EINVAL)
				continue;
			pr_perror("msgctl(MSG_STAT) of slot %d", idx);
			return -errno;
		}
		dump_ipc_desc(&d, id, &ds.msg_perm);
		e.desc = &d;
		e.qbytes = ds.msg_qbytes;
		e.qnum = ds.msg_qnum;
		if (!img)
			ret = dump_img_open(ctx, IMG_IPCNS_MSG, ns_id, &img);
		if (!ret)
			ret = img_write_entry(img, &e.base);
		if (!ret)
			ret = dump_messages(img, id, ds.msg_qnum, info.msgmax);
		pr_debug("SysV msg queue %d: key %#x mode %#o %lu messages", id, d.key, d.mode,
			 (unsigned long)ds.msg_qnum);
		seen++;
	}
	if (!ret && seen != info.msgpool) {
		pr_err("the tree's IPC namespace has %d SysV message queues, %d found",
		       info.msgpool, seen);
		ret = -EAGAIN;
	}
	return img_close_keep(img, ret);
}

static int dump_sets(struct dump_ctx *ctx, uint32_t ns_id)
{
	struct seminfo info;
	struct cr_img *img = NULL;
	int maxidx, ret = 0, seen = 0;

	maxidx = semctl(0, 0, SEM_INFO, &info);
	if (maxidx < 0) {
		pr_perror("semctl(SEM_INFO) in the tree's IPC namespace");
		return -errno;
	}
	for (int idx = 0; idx <= maxidx && !ret; idx++) {
		IpcSemEntry e = IPC_SEM_ENTRY__INIT;
		IpcDescEntry d = IPC_DESC_ENTRY__INIT;
		struct semid_ds ds;
		unsigned short *vals;
		int id = semctl(idx, 0, SEM_STAT, &ds);

		if (id < 0) {
			if (errno == EINVAL)
				continue;
			pr_perror("semctl(SEM_STAT) of slot %d", idx);
			return -errno;
		}
		dump_ipc_desc(&d, id, &ds.sem_perm);
		e.desc = &d;
		e.nsems = ds.sem_nsems;
		vals = calloc(e.nsems ? e.nsems : 1, sizeof(*vals));
		if (!vals)
			return img_close_keep(img, -ENOMEM);
		if (semctl(id, 0, GETALL, vals) < 0) {
			ret = -errno;
			pr_perror("semctl(GETALL) of SysV semaphore set %d", id);
		}
		if (!ret && !img)
			ret = dump_img_open(ctx, IMG_IPCNS_SEM, ns_id, &img);
		if (!ret)
			ret = img_write_entry(img, &e.base);
		if (!ret)
			ret = write_padded(img, vals, e.nsems * sizeof(*vals), "the values", id);
		free(vals);
		pr_debug("SysV sem set %d: key %#x mode %#o %u semaphores", id, d.key, d.mode,
			 e.nsems);
		seen++;
	}
	if (!ret && seen != info.semusz) {
		pr_err("the tree's IPC namespace has %d SysV semaphore sets, %d found",
		       info.semusz, seen);
		ret = -EAGAIN;
	}
	return img_close_keep(img, ret);
}

int dump_ipc_msg_sem(struct dump_ctx *ctx, uint32_t ns_id)
{
	int ret = dump_queues(ctx, ns_id);

	return ret ? ret : dump_sets(ctx, ns_id);
}
