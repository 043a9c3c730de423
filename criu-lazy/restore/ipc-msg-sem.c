/*
 * SysV message queues and semaphore sets of the tree's new IPC namespace
 * (ipc-ns.c runs this inside it), from ipcns-msg/sem-<ns>.img (the formats:
 * dump/ipc-msg-sem.c): each object made under its id through
 * msg_next_id/sem_next_id, owner and mode set with IPC_SET, then its
 * messages sent again in order, or its values set (SETALL).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <unistd.h>

#define LOG_PREFIX ""
#include "common/ipc-sysctl.h"
#include "common/log.h"
#include "images/image.h"
#include "restore/restore.h"
#include "restore/shmem.h"

#include "ipc-msg.pb-c.h"
#include "ipc-sem.pb-c.h"

int rst_ipc_set_next_id(const char *kind, uint32_t id)
{
	char path[32], text[16];

	snprintf(path, sizeof(path), "kernel/%s_next_id", kind);
	snprintf(text, sizeof(text), "%u", id);
	return ipc_sysctl_write_text(path, text);
}

/* @len bytes then the padding to 8 */
static int read_padded(struct cr_img *img, void *buf, size_t len, const char *what, uint32_t id)
{
	size_t total = (len + 7) & ~(size_t)7, done = 0;
	char pad[8];
	int fd = img_raw_fd(img);

	while (fd >= 0 && done < total) {
		size_t want = done < len ? len - done : total - done;
		ssize_t n = read(fd, done < len ? (char *)buf + done : pad, want);

		if (n <= 0) {
			pr_err("%s: %s of SysV object %u: truncated", img_name(img), what, id);
			return -EIO;
		}
		done += n;
	}
	return fd < 0 ? fd : 0;
}

static int check_id(const char *kind, int got, const IpcDescEntry *d)
{
	if (got < 0) {
		pr_perror("SysV %s %u (key %#x): can't make it", kind, d->id, d->key);
		return -errno;
	}
	if ((uint32_t)got != d->id) {
		pr_err("SysV %s %u came back as %d (%s_next_id not honoured)", kind, d->id, got,
		       kind);
		return -EEXIST;
	}
	return 0;
}

static int make_queue(struct cr_img *img, const IpcMsgEntry *e)
{
	const IpcDescEntry *d = e->desc;
	struct msqid_ds ds;
	int id, ret;

	ret = rst_ipc_set_next_id("msg", d->id);
	if (ret)
		return ret;
	id = msgget(d->key, (d->mode & 0777) | IPC_CREAT | IPC_EXCL);
	ret = check_id("msg", id, d);
	if (ret)
		return ret;
	memset(&ds, 0, sizeof(ds));
	ds.msg_perm.uid = d->uid;
	ds.msg_perm.gid = d->gid;
	ds.msg_perm.mode = d->mode & 0777;
	ds.msg_qbytes = e->qbytes;
	if (msgctl(id, IPC_SET, &ds)) {
		pr_perror("SysV message queue %u: can't set its owner, mode and size", d->id);
		return -errno;
	}
	for (uint32_t n = 0; n < e->qnum && !ret; n++) {
		IpcMsg *m;
		struct { long mtype; char mtext[]; } *buf;

		ret = img_read_entry(img, &ipc_msg__descriptor, (ProtobufCMessage **)&m);
		if (ret != 1) {
			pr_err("%s: SysV message queue %u: message %u of %u missing", img_name(img),
			       d->id, n, e->qnum);
			return ret ? ret : -EIO;
		}
		buf = malloc(sizeof(long) + m->msize + 8);
		ret = buf ? read_padded(img, buf->mtext, m->msize, "a message", d->id) : -ENOMEM;
		if (!ret) {
			buf->mtype = m->mtype;
			if (msgsnd(id, buf, m->msize, IPC_NOWAIT)) {
				ret = -errno;
				pr_perror("SysV message queue %u: can't send message %u again",
					  d->id, n);
			}
		}
		free(buf);
		ipc_msg__free_unpacked(m, NULL);
	}
	return ret;
}

static int make_set(struct cr_img *img, const IpcSemEntry *e)
{
	const IpcDescEntry *d = e->desc;
	struct semid_ds ds;
	unsigned short *vals;
	int id, ret;

	ret = rst_ipc_set_next_id("sem", d->id);
	if (ret)
		return ret;
	id = semget(d->key, e->nsems, (d->mode & 0777) | IPC_CREAT | IPC_EXCL);
	ret = check_id("sem", id, d);
	if (ret)
		return ret;
	memset(&ds, 0, sizeof(ds));
	ds.sem_perm.uid = d->uid;
	ds.sem_perm.gid = d->gid;
	ds.sem_perm.mode = d->mode & 0777;
	if (semctl(id, 0, IPC_SET, &ds)) {
		pr_perror("SysV semaphore set %u: can't set its owner and mode", d->id);
		return -errno;
	}
	vals = calloc(e->nsems ? e->nsems : 1, sizeof(*vals));
	ret = vals ? read_padded(img, vals, e->nsems * sizeof(*vals), "the values", d->id) : -ENOMEM;
	if (!ret && semctl(id, 0, SETALL, vals)) {
		ret = -errno;
		pr_perror("SysV semaphore set %u: can't set its values", d->id);
	}
	free(vals);
	return ret;
}

static int each_object(struct rst_tree *tree, enum img_type type,
		       const ProtobufCMessageDescriptor *desc,
		       int (*make)(struct cr_img *, const ProtobufCMessage *))
{
	struct cr_img *img;
	int ret;

	ret = img_open(tree->dirfd, type, tree->ipc.ns_id, O_RDONLY, &img);
	if (ret)
		return ret == -ENOENT ? 0 : ret;	/* ENOENT: none */
	while (!ret) {
		ProtobufCMessage *m;

		ret = img_read_entry(img, desc, &m);
		if (ret != 1)
			break;
		ret = make(img, m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	img_close(img);
	return ret;
}

static int make_queue_msg(struct cr_img *img, const ProtobufCMessage *m)
{
	return make_queue(img, (const IpcMsgEntry *)m);
}

static int make_set_msg(struct cr_img *img, const ProtobufCMessage *m)
{
	return make_set(img, (const IpcSemEntry *)m);
}

int rst_ipc_msg_sem(struct rst_tree *tree)
{
	int ret = each_object(tree, IMG_IPCNS_MSG, &ipc_msg_entry__descriptor, make_queue_msg);

	return ret ? ret : each_object(tree, IMG_IPCNS_SEM, &ipc_sem_entry__descriptor,
				       make_set_msg);
}
