/*
 * Image files: open by type and number relative to a directory fd, check
 * or write the magic words, and read or write length-framed protobuf-c
 * records (u32 length in host order, then the packed message).
 *
 * Errors are logged once here, naming the file and the offset, and returned
 * as a negative errno; callers only propagate them.  The one exception is a
 * missing file opened for reading: img_open() returns -ENOENT silently,
 * because an absent image is normal (it reads as zero records).
 */
#ifndef CRIU_LAZY_IMAGES_IMAGE_H
#define CRIU_LAZY_IMAGES_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

enum img_type {
	IMG_INVENTORY,		/* inventory.img		inventory_entry */
	IMG_PSTREE,		/* pstree.img			pstree_entry* */
	IMG_CORE,		/* core-TID.img			core_entry */
	IMG_IDS,		/* ids-PID.img			task_kobj_ids_entry */
	IMG_MM,			/* mm-PID.img			mm_entry */
	IMG_PAGEMAP,		/* pagemap-PID.img		pagemap_head, pagemap_entry* */
	IMG_PAGEMAP_SHMEM,	/* pagemap-shmem-SHMID.img	same */
	IMG_FS,			/* fs-PID.img			fs_entry */
	IMG_FILES,		/* files.img			file_entry* */
	IMG_FDINFO,		/* fdinfo-FILES_ID.img		fdinfo_entry* */
	IMG_PIPES_DATA,		/* pipes-data.img		(pipe_data_entry + raw bytes)* */
	IMG_TTY_INFO,		/* tty-info.img			tty_info_entry* */
	IMG_SECCOMP,		/* seccomp.img			seccomp_entry */
	IMG_TIMENS,		/* timens-ID.img		timens_entry */
	IMG_STATS_DUMP,		/* stats-dump			stats_entry */
	IMG_STATS_RESTORE,	/* stats-restore		stats_entry */
	IMG_TTY_DATA,		/* tty-data.img			tty_data_entry* */
	IMG_FIFO_DATA,		/* fifo-data.img		(pipe_data_entry + raw bytes)* */
	IMG_MEMFD_INODE,	/* memfd.img			memfd_inode_entry* */
	IMG_SK_QUEUES,		/* sk-queues.img		(sk_packet_entry + raw bytes)* */
	IMG_FILE_LOCKS,		/* filelocks.img		file_lock_entry* */
	IMG_REMAP_FPATH,	/* remap-fpath.img		remap_file_path_entry* */
	IMG_GHOST_FILE,		/* ghost-file-ID.img (hex)	ghost_file_entry + contents */
	IMG_TCP_STREAM,		/* tcp-stream-INO.img (hex)	tcp_stream_entry + raw queues */
	IMG_NETNS,		/* netns-NSID.img		netns_entry */
	IMG_NETDEV,		/* netdev-NSID.img		net_device_entry* */
	IMG_IPCNS_VAR,		/* ipcns-var-NS.img		ipc_var_entry */
	IMG_IPCNS_SHM,		/* ipcns-shm-NS.img		ipc_shm_entry* */
	IMG_IPCNS_MSG,		/* ipcns-msg-NS.img		(ipc_msg_entry, (ipc_msg + raw)*)* */
	IMG_IPCNS_SEM,		/* ipcns-sem-NS.img		(ipc_sem_entry + raw values)* */
	IMG_NR_TYPES
};

/* Longest file name img_open() produces, with its NUL */
#define IMG_NAME_MAX 48

struct cr_img;

/*
 * flags: O_RDONLY checks the magic words (CRIU's two-word header, or the
 * type magic alone as img_version 1 wrote it); a missing file gives -ENOENT
 * without a log line.  O_WRONLY creates or truncates the file (mode 0600)
 * and writes the magic words.  Names with a number use @id, others ignore it.
 */
int img_open(int dirfd, enum img_type type, unsigned long id, int flags, struct cr_img **out);

/*
 * Open the file name in dirfd for reading, as an image or a pages file: a
 * regular file and nothing else (a FIFO would block its reader, a device
 * would feed it without end).  The fd keeps the O_NONBLOCK it was opened
 * with (so that a FIFO's open does not wait): it changes no read, pread or
 * mmap of a regular file.  Returns the fd with *st filled, or -errno:
 * "NAME: not a regular file" and other failures are logged, -ENOENT is
 * left to the caller.
 */
int img_open_regular(int dirfd, const char *name, struct stat *st);

/* img_open(O_RDONLY) for an image that must be there: a missing file is
 * an error, logged as "<file>: missing". */
int img_open_existing(int dirfd, enum img_type type, unsigned long id, struct cr_img **out);

/*
 * Read the next record as a @desc message into *out (free it with
 * protobuf_c_message_free_unpacked(*out, NULL)).  Returns 1 for a record,
 * 0 at a clean end of file, or a negative errno for a truncated or
 * corrupted record (logged as "<file>: truncated entry at offset N").
 */
int img_read_entry(struct cr_img *img, const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out);

/*
 * Open an optional image (a missing file holds no records), call @fn for
 * each record as a @desc message (freed after @fn returns), close.  Stops
 * at the first non-zero return of @fn, which it returns; 0 when every
 * record was taken, or a negative errno of the image itself.
 */
int img_for_each_entry(int dirfd, enum img_type type, unsigned long id,
		       const ProtobufCMessageDescriptor *desc,
		       int (*fn)(struct cr_img *img, ProtobufCMessage *msg, void *arg), void *arg);

/* Open, read the single record, close.  A missing file, an empty one or a
 * second record are errors (logged). */
int img_read_one(int dirfd, enum img_type type, unsigned long id,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);

int img_write_entry(struct cr_img *img, const ProtobufCMessage *msg);

/* Create the image with exactly one record. */
int img_write_one(int dirfd, enum img_type type, unsigned long id, const ProtobufCMessage *msg);

/*
 * The file descriptor, positioned right after the last record read or
 * written, for raw data that follows a record (pipes-data.img).  Pending
 * buffered writes are flushed first, so this can fail (negative errno).
 * The caller may read, write or seek through it; the next record starts
 * wherever the caller leaves the file offset.
 */
int img_raw_fd(struct cr_img *img);

/* Write @len bytes of raw data after the last record, through img_raw_fd().
 * 0 or a negative errno, not logged: the caller says what the data was. */
int img_write_raw(struct cr_img *img, const void *data, size_t len);

const char *img_name(const struct cr_img *img);

/* Offset of the next record in the file (after any raw data the caller
 * moved over through img_raw_fd()), or a negative errno. */
off_t img_offset(struct cr_img *img);

/* Flush, close and free.  Returns the first error of the image's life
 * (a failed write, flush or close; each logged once), else 0. */
int img_close(struct cr_img *img);

/*
 * An image being written: the space for @bytes more than written so far,
 * taken from the file system now (so that writes up to there cannot fail
 * for want of space); img_close() gives back the part not written.  0 or
 * -errno, not logged: the caller says what the space was for.
 */
int img_reserve(struct cr_img *img, uint64_t bytes);

/* Close and free an image being written, nothing more written or logged
 * (a failed dump's, removed anyway). */
void img_discard(struct cr_img *img);

/* The end of a writer that opens its image at its first entry: img may be
 * NULL (nothing to write).  Closes it and returns err if err is an error,
 * else img_close()'s result. */
int img_close_keep(struct cr_img *img, int err);

/* Per type: the message of its records (pagemap_entry for the pagemaps,
 * whose first record is a pagemap_head), and crit's name for its magic. */
const ProtobufCMessageDescriptor *img_type_descriptor(enum img_type type);
const char *img_type_magic_name(enum img_type type);

/* The type and number of an image file name ("core-42.img" -> IMG_CORE,
 * 42; @id may be NULL, and is 0 for names without a number); -ENOENT if
 * it is not one of ours (pages-N.img, lazy-pages.socket, other images). */
int img_type_from_name(const char *filename, enum img_type *type, unsigned long *id);

/* The file name of an image: "core-42.img". */
int img_format_name(enum img_type type, unsigned long id, char *buf, size_t size);

#endif
