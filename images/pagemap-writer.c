/*
 * The pagemap writer: pagemap-N.img (pagemap_head, then one pagemap_entry
 * per run) and pages-M.img (the data of the PE_PRESENT runs, in order).
 *
 * Runs come in ascending order.  A run that continues the previous one
 * with the same flags extends its entry, so the entry is written only when
 * a run that does not continue it arrives, or at close.  Entries carry the
 * count in nr_pages (field 5), compat_nr_pages 0 and explicit flags, as
 * CRIU 4.2 writes them.  Page data goes straight to the pages file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "images/image.h"
#include "images/pagemap.h"

#include "pagemap.pb-c.h"

#define PE_KNOWN_FLAGS (PE_PARENT | PE_LAZY | PE_PRESENT)
#define PAGES_IOV_BATCH 256

struct pagemap_writer {
	struct cr_img *img;
	int pages_fd;
	char pages_name[IMG_NAME_MAX];
	uint64_t pages_off;	/* bytes in the pages file */
	bool pending;		/* run below not written yet */
	uint64_t vaddr, nr_pages;
	uint32_t flags;
	uint64_t next_vaddr;	/* the next run may not start below this */
	int err;		/* first error, already logged */
};

int pagemap_writer_open(int dirfd, enum img_type type, unsigned long id, uint32_t pages_id,
			struct pagemap_writer **out)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;
	struct pagemap_writer *w;
	int ret;

	if (type != IMG_PAGEMAP && type != IMG_PAGEMAP_SHMEM) {
		pr_err("pagemap_writer_open: image type %d is not a pagemap\n", type);
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		pr_err("pagemap_writer_open: out of memory\n");
		return -ENOMEM;
	}
	pages_file_name(pages_id, w->pages_name, sizeof(w->pages_name));

	ret = img_open(dirfd, type, id, O_WRONLY, &w->img);
	if (ret)
		goto err_free;
	head.pages_id = pages_id;
	ret = img_write_entry(w->img, &head.base);
	if (ret)
		goto err_close_img;

	w->pages_fd = openat(dirfd, w->pages_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w->pages_fd < 0) {
		pr_perror("%s: can't create", w->pages_name);
		ret = -errno;
		goto err_close_img;
	}
	*out = w;
	return 0;

err_close_img:
	img_close(w->img);
err_free:
	free(w);
	return ret;
}

static int pagemap_write_pending(struct pagemap_writer *w)
{
	PagemapEntry pe = PAGEMAP_ENTRY__INIT;

	if (!w->pending)
		return 0;
	pe.vaddr = w->vaddr;
	pe.compat_nr_pages = 0;
	pe.has_flags = true;
	pe.flags = w->flags;
	pe.has_nr_pages = true;
	pe.nr_pages = w->nr_pages;
	w->pending = false;
	return img_write_entry(w->img, &pe.base);
}

/* Write all of iov[0..iovcnt) to the pages file, resuming short writes. */
static int pages_write_iov(struct pagemap_writer *w, const struct iovec *iov, int iovcnt)
{
	struct iovec batch[PAGES_IOV_BATCH];
	size_t skip = 0;	/* bytes of iov[i] already written */
	int i = 0;

	for (;;) {
		ssize_t n;
		int nb;

		while (i < iovcnt && iov[i].iov_len == skip) {
			i++;
			skip = 0;
		}
		if (i == iovcnt)
			return 0;

		for (nb = 0; nb < PAGES_IOV_BATCH && i + nb < iovcnt; nb++) {
			size_t off = nb ? 0 : skip;

			batch[nb].iov_base = (char *)iov[i + nb].iov_base + off;
			batch[nb].iov_len = iov[i + nb].iov_len - off;
		}
		n = writev(w->pages_fd, batch, nb);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			pr_perror("%s: can't write at offset %llu", w->pages_name,
				  (unsigned long long)w->pages_off);
			return -errno;
		}
		w->pages_off += n;

		while (n > 0) {
			size_t left = iov[i].iov_len - skip;

			if ((size_t)n < left) {
				skip += n;
				break;
			}
			n -= left;
			i++;
			skip = 0;
		}
	}
}

static int pagemap_check_run(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr_pages,
			     uint32_t flags, const struct iovec *iov, int iovcnt)
{
	const char *name = img_name(w->img);
	uint64_t len = 0;

	if (!nr_pages || vaddr % PAGEMAP_PAGE_SIZE ||
	    nr_pages > (UINT64_MAX - vaddr) / PAGEMAP_PAGE_SIZE) {
		pr_err("%s: bad run 0x%llx + %llu pages\n", name,
		       (unsigned long long)vaddr, (unsigned long long)nr_pages);
		return -EINVAL;
	}
	if (vaddr < w->next_vaddr) {
		pr_err("%s: run 0x%llx added below the end of the previous one (0x%llx)\n", name,
		       (unsigned long long)vaddr, (unsigned long long)w->next_vaddr);
		return -EINVAL;
	}
	if (flags & ~PE_KNOWN_FLAGS) {
		pr_err("%s: run 0x%llx has unknown flags 0x%x\n", name,
		       (unsigned long long)vaddr, flags);
		return -EINVAL;
	}
	if (!(flags & PE_PRESENT))
		return 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len != nr_pages * PAGEMAP_PAGE_SIZE) {
		pr_err("%s: run 0x%llx of %llu pages comes with %llu bytes of data\n", name,
		       (unsigned long long)vaddr, (unsigned long long)nr_pages,
		       (unsigned long long)len);
		return -EINVAL;
	}
	return 0;
}

int pagemap_writer_add_iov(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr_pages,
			   uint32_t flags, const struct iovec *iov, int iovcnt)
{
	int ret;

	if (w->err)
		return w->err;
	ret = pagemap_check_run(w, vaddr, nr_pages, flags, iov, iovcnt);
	if (ret)
		return ret;

	if (flags & PE_PRESENT) {
		ret = pages_write_iov(w, iov, iovcnt);
		if (ret)
			goto err;
	}

	if (w->pending && w->flags == flags &&
	    w->vaddr + w->nr_pages * PAGEMAP_PAGE_SIZE == vaddr) {
		w->nr_pages += nr_pages;
	} else {
		ret = pagemap_write_pending(w);
		if (ret)
			goto err;
		w->pending = true;
		w->vaddr = vaddr;
		w->nr_pages = nr_pages;
		w->flags = flags;
	}
	w->next_vaddr = vaddr + nr_pages * PAGEMAP_PAGE_SIZE;
	return 0;

err:
	w->err = ret;
	return ret;
}

int pagemap_writer_add(struct pagemap_writer *w, uint64_t vaddr, uint64_t nr_pages,
		       uint32_t flags, const void *data)
{
	struct iovec iov = {
		.iov_base = (void *)data,
		.iov_len = (flags & PE_PRESENT) ? nr_pages * PAGEMAP_PAGE_SIZE : 0,
	};

	return pagemap_writer_add_iov(w, vaddr, nr_pages, flags, &iov, 1);
}

int pagemap_writer_close(struct pagemap_writer *w)
{
	int ret = w->err, ret2;

	if (!ret)
		ret = pagemap_write_pending(w);
	ret2 = img_close(w->img);
	if (ret2 && !ret)
		ret = ret2;
	if (close(w->pages_fd) && !ret) {
		pr_perror("%s: error when closing", w->pages_name);
		ret = -errno;
	}
	free(w);
	return ret;
}
