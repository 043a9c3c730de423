/*
 * One table of the IPC sysctls and where each goes in ipc_var_entry, for
 * both directions (ipc-sysctl.h); the text goes through common/sysctl.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc-sysctl.h"
#include "common/log.h"
#include "common/sysctl.h"

/* U32_LATE: written with the next ids, after the objects (ipc-sysctl.h) */
enum { U32, U64, U32_OPT, NEXT_ID, U32_LATE };

struct ipc_sysctl {
	const char *path;		/* under /proc/sys/ */
	int kind;
	size_t off;			/* of the value in IpcVarEntry */
	size_t has_off;			/* of its has_ flag (U32_OPT, NEXT_ID) */
};

#define F(field)	offsetof(IpcVarEntry, field)
static const struct ipc_sysctl sysctls[] = {
	{ "kernel/msgmax", U32, F(msg_ctlmax), 0 },
	{ "kernel/msgmnb", U32, F(msg_ctlmnb), 0 },
	{ "kernel/auto_msgmni", U32, F(auto_msgmni), 0 },
	{ "kernel/msgmni", U32, F(msg_ctlmni), 0 },
	{ "kernel/shmmax", U64, F(shm_ctlmax), 0 },
	{ "kernel/shmall", U64, F(shm_ctlall), 0 },
	{ "kernel/shmmni", U32, F(shm_ctlmni), 0 },
	{ "kernel/shm_rmid_forced", U32_LATE, F(shm_rmid_forced), 0 },
	{ "fs/mqueue/queues_max", U32, F(mq_queues_max), 0 },
	{ "fs/mqueue/msg_max", U32, F(mq_msg_max), 0 },
	{ "fs/mqueue/msgsize_max", U32, F(mq_msgsize_max), 0 },
	{ "fs/mqueue/msg_default", U32_OPT, F(mq_msg_default), F(has_mq_msg_default) },
	{ "fs/mqueue/msgsize_default", U32_OPT, F(mq_msgsize_default), F(has_mq_msgsize_default) },
	{ "kernel/msg_next_id", NEXT_ID, F(msg_next_id), F(has_msg_next_id) },
	{ "kernel/sem_next_id", NEXT_ID, F(sem_next_id), F(has_sem_next_id) },
	{ "kernel/shm_next_id", NEXT_ID, F(shm_next_id), F(has_shm_next_id) },
};
#undef F

/* logged, but for an @optional sysctl this kernel lacks (-ENOENT) */
static int read_text(const char *path, char *buf, size_t size, bool optional)
{
	int ret = sysctl_read_text(path, buf, size);

	if (ret && !(optional && ret == -ENOENT))
		pr_err("can't read /proc/sys/%s: %s", path, strerror(-ret));
	return ret;
}

int ipc_sysctl_write_text(const char *path, const char *text)
{
	int ret = sysctl_write_text(path, text);

	if (ret)
		pr_err("can't write %s to /proc/sys/%s: %s", text, path, strerror(-ret));
	return ret;
}

int ipc_sysctl_read(IpcVarEntry *e, uint32_t sem[4])
{
	char buf[128];
	int ret;

	ret = read_text("kernel/sem", buf, sizeof(buf), false);
	if (ret)
		return ret;
	if (sscanf(buf, "%" SCNu32 " %" SCNu32 " %" SCNu32 " %" SCNu32, &sem[0], &sem[1],
		   &sem[2], &sem[3]) != 4) {
		pr_err("/proc/sys/kernel/sem: not four numbers: %s", buf);
		return -EINVAL;
	}
	e->n_sem_ctls = 4;
	e->sem_ctls = sem;
	for (size_t i = 0; i < sizeof(sysctls) / sizeof(sysctls[0]); i++) {
		const struct ipc_sysctl *s = &sysctls[i];
		char *p = (char *)e + s->off;
		long long v;

		ret = read_text(s->path, buf, sizeof(buf), s->kind == U32_OPT);
		if (ret == -ENOENT && s->kind == U32_OPT)
			continue;	/* a kernel without it */
		if (ret)
			return ret;
		v = strtoll(buf, NULL, 10);
		if (s->kind == U64)
			*(uint64_t *)p = strtoull(buf, NULL, 10);
		else
			*(uint32_t *)p = (uint32_t)v;
		if (s->kind == U32_OPT || (s->kind == NEXT_ID && v >= 0))
			*(protobuf_c_boolean *)((char *)e + s->has_off) = true;
	}
	return 0;
}

int ipc_sysctl_write(const IpcVarEntry *e, bool next_ids)
{
	char buf[96];
	int ret;

	if (!next_ids && e->n_sem_ctls) {
		if (e->n_sem_ctls != 4) {
			pr_err("ipc_var_entry: %zu sem_ctls values, not 4", e->n_sem_ctls);
			return -EINVAL;
		}
		snprintf(buf, sizeof(buf), "%u %u %u %u", e->sem_ctls[0], e->sem_ctls[1],
			 e->sem_ctls[2], e->sem_ctls[3]);
		ret = ipc_sysctl_write_text("kernel/sem", buf);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < sizeof(sysctls) / sizeof(sysctls[0]); i++) {
		const struct ipc_sysctl *s = &sysctls[i];
		const char *p = (const char *)e + s->off;

		if ((s->kind == NEXT_ID || s->kind == U32_LATE) != next_ids)
			continue;
		if ((s->kind == U32_OPT || s->kind == NEXT_ID) &&
		    !*(const protobuf_c_boolean *)((const char *)e + s->has_off))
			continue;
		if (s->kind == U64)
			snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)p);
		else
			snprintf(buf, sizeof(buf), "%" PRIu32, *(const uint32_t *)p);
		ret = ipc_sysctl_write_text(s->path, buf);
		if (ret)
			return ret;
	}
	return 0;
}
