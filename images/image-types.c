/*
 * The table of image types: file name pattern, magic words and record
 * message of every image img_open() knows.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "images/image.h"
#include "images/image-types.h"
#include "images/magic.h"

#include "core.pb-c.h"
#include "fdinfo.pb-c.h"
#include "file-lock.pb-c.h"
#include "fs.pb-c.h"
#include "ghost-file.pb-c.h"
#include "inventory.pb-c.h"
#include "ipc-msg.pb-c.h"
#include "ipc-sem.pb-c.h"
#include "ipc-shm.pb-c.h"
#include "ipc-var.pb-c.h"
#include "memfd.pb-c.h"
#include "mm.pb-c.h"
#include "netdev.pb-c.h"
#include "pagemap.pb-c.h"
#include "pipe-data.pb-c.h"
#include "pstree.pb-c.h"
#include "remap-file-path.pb-c.h"
#include "seccomp.pb-c.h"
#include "sk-packet.pb-c.h"
#include "stats.pb-c.h"
#include "tcp-stream.pb-c.h"
#include "timens.pb-c.h"
#include "tty.pb-c.h"

/* "prefix%lu.suffix" names carry a number ("%lx": in hex); the others are fixed. */
static const struct img_type_info img_types[IMG_NR_TYPES] = {
	[IMG_INVENTORY]	    = { "inventory.img",	 0,		    INVENTORY_MAGIC,
				"INVENTORY",  &inventory_entry__descriptor },
	[IMG_PSTREE]	    = { "pstree.img",		 IMG_COMMON_MAGIC,  PSTREE_MAGIC,
				"PSTREE",     &pstree_entry__descriptor },
	[IMG_CORE]	    = { "core-%lu.img",		 IMG_COMMON_MAGIC,  CORE_MAGIC,
				"CORE",	      &core_entry__descriptor },
	[IMG_IDS]	    = { "ids-%lu.img",		 IMG_COMMON_MAGIC,  IDS_MAGIC,
				"IDS",	      &task_kobj_ids_entry__descriptor },
	[IMG_MM]	    = { "mm-%lu.img",		 IMG_COMMON_MAGIC,  MM_MAGIC,
				"MM",	      &mm_entry__descriptor },
	[IMG_PAGEMAP]	    = { "pagemap-%lu.img",	 IMG_COMMON_MAGIC,  PAGEMAP_MAGIC,
				"PAGEMAP",    &pagemap_entry__descriptor },
	[IMG_PAGEMAP_SHMEM] = { "pagemap-shmem-%lu.img", IMG_COMMON_MAGIC,  PAGEMAP_MAGIC,
				"PAGEMAP",    &pagemap_entry__descriptor },
	[IMG_FS]	    = { "fs-%lu.img",		 IMG_COMMON_MAGIC,  FS_MAGIC,
				"FS",	      &fs_entry__descriptor },
	[IMG_FILES]	    = { "files.img",		 IMG_COMMON_MAGIC,  FILES_MAGIC,
				"FILES",      &file_entry__descriptor },
	[IMG_FDINFO]	    = { "fdinfo-%lu.img",	 IMG_COMMON_MAGIC,  FDINFO_MAGIC,
				"FDINFO",     &fdinfo_entry__descriptor },
	[IMG_PIPES_DATA]    = { "pipes-data.img",	 IMG_COMMON_MAGIC,  PIPES_DATA_MAGIC,
				"PIPES_DATA", &pipe_data_entry__descriptor },
	[IMG_TTY_INFO]	    = { "tty-info.img",		 IMG_COMMON_MAGIC,  TTY_INFO_MAGIC,
				"TTY_INFO",   &tty_info_entry__descriptor },
	[IMG_SECCOMP]	    = { "seccomp.img",		 IMG_COMMON_MAGIC,  SECCOMP_MAGIC,
				"SECCOMP",    &seccomp_entry__descriptor },
	[IMG_TIMENS]	    = { "timens-%lu.img",	 IMG_COMMON_MAGIC,  TIMENS_MAGIC,
				"TIMENS",     &timens_entry__descriptor },
	[IMG_STATS_DUMP]    = { "stats-dump",		 IMG_SERVICE_MAGIC, STATS_MAGIC,
				"STATS",      &stats_entry__descriptor },
	[IMG_STATS_RESTORE] = { "stats-restore",	 IMG_SERVICE_MAGIC, STATS_MAGIC,
				"STATS",      &stats_entry__descriptor },
	[IMG_TTY_DATA]	    = { "tty-data.img",		 IMG_COMMON_MAGIC,  TTY_DATA_MAGIC,
				"TTY_DATA",   &tty_data_entry__descriptor },
	[IMG_FIFO_DATA]	    = { "fifo-data.img",	 IMG_COMMON_MAGIC,  FIFO_DATA_MAGIC,
				"FIFO_DATA",  &pipe_data_entry__descriptor },
	[IMG_MEMFD_INODE]   = { "memfd.img",		 IMG_COMMON_MAGIC,  MEMFD_INODE_MAGIC,
				"MEMFD_INODE", &memfd_inode_entry__descriptor },
	[IMG_SK_QUEUES]	    = { "sk-queues.img",	 IMG_COMMON_MAGIC,  SK_QUEUES_MAGIC,
				"SK_QUEUES",  &sk_packet_entry__descriptor },
	[IMG_FILE_LOCKS]    = { "filelocks.img",	 IMG_COMMON_MAGIC,  FILE_LOCKS_MAGIC,
				"FILE_LOCKS", &file_lock_entry__descriptor },
	[IMG_REMAP_FPATH]   = { "remap-fpath.img",	 IMG_COMMON_MAGIC,  REMAP_FPATH_MAGIC,
				"REMAP_FPATH", &remap_file_path_entry__descriptor },
	/* CRIU numbers ghost files in hex */
	[IMG_GHOST_FILE]    = { "ghost-file-%lx.img",	 IMG_COMMON_MAGIC,  GHOST_FILE_MAGIC,
				"GHOST_FILE", &ghost_file_entry__descriptor },
	/* named by the socket's inode in hex, as CRIU does */
	[IMG_TCP_STREAM]    = { "tcp-stream-%lx.img",	 IMG_COMMON_MAGIC,  TCP_STREAM_MAGIC,
				"TCP_STREAM", &tcp_stream_entry__descriptor },
	/* a network namespace of the tree, by its ns id (netns.md) */
	[IMG_NETNS]	    = { "netns-%lu.img",	 IMG_COMMON_MAGIC,  NETNS_MAGIC,
				"NETNS",      &netns_entry__descriptor },
	[IMG_NETDEV]	    = { "netdev-%lu.img",	 IMG_COMMON_MAGIC,  NETDEV_MAGIC,
				"NETDEV",     &net_device_entry__descriptor },
	/* an IPC namespace's, numbered by its ids-PID.img ipc_ns_id */
	[IMG_IPCNS_VAR]	    = { "ipcns-var-%lu.img",	 IMG_COMMON_MAGIC,  IPCNS_VAR_MAGIC,
				"IPC_VAR",    &ipc_var_entry__descriptor },
	[IMG_IPCNS_SHM]	    = { "ipcns-shm-%lu.img",	 IMG_COMMON_MAGIC,  IPCNS_SHM_MAGIC,
				"IPCNS_SHM",  &ipc_shm_entry__descriptor },
	[IMG_IPCNS_MSG]	    = { "ipcns-msg-%lu.img",	 IMG_COMMON_MAGIC,  IPCNS_MSG_MAGIC,
				"IPCNS_MSG",  &ipc_msg_entry__descriptor },
	[IMG_IPCNS_SEM]	    = { "ipcns-sem-%lu.img",	 IMG_COMMON_MAGIC,  IPCNS_SEM_MAGIC,
				"IPCNS_SEM",  &ipc_sem_entry__descriptor },
};

const struct img_type_info *img_type_info(enum img_type type)
{
	if ((unsigned)type >= IMG_NR_TYPES)
		return NULL;
	return &img_types[type];
}

const ProtobufCMessageDescriptor *img_type_descriptor(enum img_type type)
{
	const struct img_type_info *ti = img_type_info(type);

	return ti ? ti->desc : NULL;
}

const char *img_type_magic_name(enum img_type type)
{
	const struct img_type_info *ti = img_type_info(type);

	return ti ? ti->magic_name : NULL;
}

int img_format_name(enum img_type type, unsigned long id, char *buf, size_t size)
{
	const struct img_type_info *ti = img_type_info(type);
	int n;

	if (!ti)
		return -EINVAL;
	if (strchr(ti->pattern, '%'))
		n = snprintf(buf, size, ti->pattern, id);
	else
		n = snprintf(buf, size, "%s", ti->pattern);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* Does @name match "prefix%lu.suffix" (a plain decimal number, or hex for
 * "%lx")?  Its number in *id. */
static bool name_matches_pattern(const char *name, const char *pattern, unsigned long *id)
{
	const char *conv = strstr(pattern, "%l");
	size_t plen, nlen = strlen(name), slen;
	unsigned long n = 0, base;
	const char *p;

	*id = 0;
	if (!conv)
		return !strcmp(name, pattern);

	base = conv[2] == 'x' ? 16 : 10;
	plen = conv - pattern;
	slen = strlen(conv + 3);
	if (nlen <= plen + slen || strncmp(name, pattern, plen) ||
	    strcmp(name + nlen - slen, conv + 3))
		return false;
	for (p = name + plen; p < name + nlen - slen; p++) {
		unsigned long d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			return false;
		if (n > (ULONG_MAX - d) / base)
			return false;
		n = n * base + d;
	}
	*id = n;
	return true;
}

int img_type_from_name(const char *filename, enum img_type *type, unsigned long *id)
{
	unsigned long n;

	for (int t = 0; t < IMG_NR_TYPES; t++) {
		if (name_matches_pattern(filename, img_types[t].pattern, &n)) {
			*type = t;
			if (id)
				*id = n;
			return 0;
		}
	}
	return -ENOENT;
}
