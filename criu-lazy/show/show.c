/*
 * `criu-lazy show FILE|DIR`: decode images to JSON on stdout, in the shape
 * crit prints them: {"magic": "CORE", "entries": [...]} per image, and for
 * a directory one object keyed by file name (files that are not images we
 * know, pages-*.img and lazy-pages.socket are skipped).  A pages file given
 * by name shows only its size and page count.
 *
 * The whole output is built in memory and printed only if every image
 * decoded, so a corrupted image gives one error line and no partial JSON.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"
#include "options.h"
#include "show/show-ipc.h"
#include "show/show.h"
#include "show/show-json.h"

#include "ghost-file.pb-c.h"
#include "pagemap.pb-c.h"
#include "pipe-data.pb-c.h"
#include "sk-packet.pb-c.h"
#include "tcp-stream.pb-c.h"

int show_skip_raw(struct cr_img *img, uint64_t bytes)
{
	off_t start = img_offset(img), end;
	int fd = img_raw_fd(img);
	struct stat st;

	if (start < 0)
		return start;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st)) {
		pr_perror("%s: can't stat", img_name(img));
		return -errno;
	}
	end = lseek(fd, bytes, SEEK_CUR);
	if (end < 0) {
		pr_perror("%s: can't skip %llu bytes at offset %lld", img_name(img),
			  (unsigned long long)bytes, (long long)start);
		return -errno;
	}
	if (end > st.st_size) {
		pr_err("%s: truncated data at offset %lld (%llu bytes expected, %lld in the file)\n",
		       img_name(img), (long long)start, (unsigned long long)bytes,
		       (long long)(st.st_size - start));
		return -EBADMSG;
	}
	return 0;
}

/*
 * ghost-file-N.img: the entry, then either chunk entries each followed by
 * its bytes, or raw bytes to the end (not shown, as crit without its
 * extra data).
 */
static int show_ghost(struct json_writer *j, struct cr_img *img)
{
	ProtobufCMessage *msg;
	bool chunks;
	int ret, fd;

	ret = img_read_entry(img, &ghost_file_entry__descriptor, &msg);
	if (ret <= 0)
		return ret;
	json_message(j, msg);
	chunks = ((GhostFileEntry *)msg)->chunks;
	protobuf_c_message_free_unpacked(msg, NULL);
	if (!chunks) {
		fd = img_raw_fd(img);
		return fd < 0 ? fd : 0;
	}
	while ((ret = img_read_entry(img, &ghost_chunk_entry__descriptor, &msg)) > 0) {
		uint64_t len = ((GhostChunkEntry *)msg)->len;

		json_message(j, msg);
		protobuf_c_message_free_unpacked(msg, NULL);
		if (len > UINT32_MAX) {
			pr_err("%s: a chunk of %llu bytes\n", img_name(img), (unsigned long long)len);
			return -EBADMSG;
		}
		ret = show_skip_raw(img, len);
		if (ret)
			return ret;
	}
	return ret;
}

static int show_entries(struct json_writer *j, struct cr_img *img, enum img_type type)
{
	const ProtobufCMessageDescriptor *desc = img_type_descriptor(type);
	ProtobufCMessage *msg;
	int ret;

	if (type == IMG_GHOST_FILE)
		return show_ghost(j, img);
	/* a pagemap starts with its head, as crit shows it */
	if (type == IMG_PAGEMAP || type == IMG_PAGEMAP_SHMEM)
		desc = &pagemap_head__descriptor;

	while ((ret = img_read_entry(img, desc, &msg)) > 0) {
		json_message(j, msg);
		ret = 0;
		if (type == IMG_PIPES_DATA || type == IMG_FIFO_DATA)
			ret = show_skip_raw(img, ((PipeDataEntry *)msg)->bytes);
		else if (type == IMG_SK_QUEUES)
			ret = show_skip_raw(img, ((SkPacketEntry *)msg)->length);
		else if (type == IMG_TCP_STREAM)
			ret = show_skip_raw(img, ((TcpStreamEntry *)msg)->inq_len +
					    ((TcpStreamEntry *)msg)->outq_len);
		else
			ret = show_ipc_skip(img, type, msg);
		protobuf_c_message_free_unpacked(msg, NULL);
		if (ret)
			return ret;
		desc = img_type_descriptor(type);
	}
	return ret;
}

static int show_image(struct json_writer *j, int dirfd, enum img_type type, unsigned long id)
{
	const char *magic = img_type_magic_name(type);
	struct cr_img *img;
	int ret;

	ret = img_open_existing(dirfd, type, id, &img);
	if (ret)
		return ret;

	json_begin_object(j);
	json_key(j, "magic");
	json_string(j, magic, strlen(magic));
	json_key(j, "entries");
	json_begin_array(j);
	ret = show_entries(j, img, type);
	json_end_array(j);
	json_end_object(j);

	img_close(img);
	return ret;
}

static bool is_pages_file(const char *name)
{
	unsigned int id;
	int end = 0;

	return sscanf(name, "pages-%u.img%n", &id, &end) == 1 && name[end] == '\0';
}

static int show_pages(struct json_writer *j, int dirfd, const char *name)
{
	struct stat st;
	int fd = img_open_regular(dirfd, name, &st);

	if (fd == -ENOENT)
		pr_err("%s: missing\n", name);
	if (fd < 0)
		return fd;
	close(fd);
	json_begin_object(j);
	json_key(j, "magic");
	json_string(j, "PAGES", 5);
	json_key(j, "size");
	json_uint(j, st.st_size);
	json_key(j, "nr_pages");
	json_uint(j, st.st_size / PAGEMAP_PAGE_SIZE);
	json_end_object(j);
	return 0;
}

static int show_file(struct json_writer *j, const char *path)
{
	char *copy = strdup(path), *slash;
	const char *dir = ".", *name = copy;
	enum img_type type;
	unsigned long id;
	int dirfd, ret;

	if (!copy) {
		pr_err("out of memory\n");
		return -ENOMEM;
	}
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		name = slash + 1;
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		pr_perror("%s: can't open", dir);
		ret = -errno;
		goto out_free;
	}

	if (is_pages_file(name)) {
		ret = show_pages(j, dirfd, name);
	} else if (img_type_from_name(name, &type, &id) == 0) {
		ret = show_image(j, dirfd, type, id);
	} else {
		pr_err("%s: not an image file criu-lazy knows\n", path);
		ret = -EINVAL;
	}
	close(dirfd);
out_free:
	free(copy);
	return ret;
}

static int show_dir(struct json_writer *j, const char *path)
{
	struct dirent **names;
	int dirfd, n, ret = 0;

	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		pr_perror("%s: can't open", path);
		return -errno;
	}
	n = scandirat(dirfd, ".", &names, NULL, alphasort);
	if (n < 0) {
		pr_perror("%s: can't list", path);
		ret = -errno;
		goto out_close;
	}

	json_begin_object(j);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		enum img_type type;
		unsigned long id;
		struct stat st;

		if (ret)
			continue;	/* free the rest of the list */
		if (img_type_from_name(name, &type, &id) ||
		    fstatat(dirfd, name, &st, 0) || !S_ISREG(st.st_mode)) {
			pr_debug("show: skipping %s\n", name);
			continue;
		}
		json_key(j, name);
		ret = show_image(j, dirfd, type, id);
	}
	json_end_object(j);

	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
out_close:
	close(dirfd);
	return ret;
}

int cr_show(struct opts *o)
{
	struct json_writer j;
	char *out = NULL;
	size_t len = 0;
	struct stat st;
	FILE *mem;
	int ret;

	if (stat(o->show_path, &st)) {
		pr_perror("%s", o->show_path);
		return -errno;
	}
	mem = open_memstream(&out, &len);
	if (!mem) {
		pr_perror("can't buffer the output");
		return -errno;
	}
	json_init(&j, mem);
	if (S_ISDIR(st.st_mode))
		ret = show_dir(&j, o->show_path);
	else
		ret = show_file(&j, o->show_path);
	if (fclose(mem) && !ret) {
		pr_perror("can't buffer the output");
		ret = -ENOMEM;
	}

	if (!ret && (fwrite(out, 1, len, stdout) != len || fflush(stdout))) {
		pr_perror("can't write to stdout");
		ret = -EIO;
	}
	free(out);
	return ret;
}
