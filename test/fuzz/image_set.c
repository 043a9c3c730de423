/*
 * Fuzz target: a whole image directory (an image set, see fuzz-util.h), as
 * the readers of a dump take it:
 *   - `criu-lazy show DIR` (every image, the pages files named);
 *   - the restore's first stages without any task: every process's images
 *     read and checked against each other (pstree, cores, mm, pagemaps
 *     against their pages files, files, fds, ...) and the memory plan;
 *   - the lazy page server's store: pstree and each process's pagemap
 *     index over its mapped pages file, then lookups.
 * Seeds: real dumps of the zdtm programs (scripts/fuzz-seed).
 */
#include <dirent.h>
#include <stdint.h>
#include <string.h>

#include "images/image.h"
#include "images/pagemap.h"
#include "options.h"
#include "pageserver/ps-store.h"
#include "restore/restore.h"
#include "restore/plan.h"
#include "restore/tree.h"
#include "fuzz-util.h"

static void restore_load(struct opts *o)
{
	struct rst_tree tree = {
		.o = o, .dirfd = fuzz_dir_fd(), .ev_r = -1, .ev_w = -1, .lazy_sock = -1,
	};

	if (!rst_tree_load(&tree))
		rst_tree_plan(&tree);
	rst_tree_free(&tree);
}

/* What faults would ask: the first and last page of every run of every
 * pagemap of the set, and the page after it; the data found is read. */
static void store_lookups(const struct ps_store *s)
{
	DIR *d = opendir(fuzz_dir_path());
	struct dirent *e;

	while (d && (e = readdir(d))) {
		struct pagemap_index pi = { .pages_fd = -1 };
		enum img_type type;
		unsigned long pid;

		if (img_type_from_name(e->d_name, &type, &pid) || type != IMG_PAGEMAP ||
		    pagemap_index_load(fuzz_dir_fd(), type, pid, false, &pi)) {
			pagemap_index_free(&pi);
			continue;
		}
		for (size_t i = 0; i < pi.nr_runs && i < 64; i++) {
			const struct page_run *r = &pi.runs[i];
			uint64_t at[3] = { r->vaddr, r->vaddr + (r->nr_pages - 1) * 4096,
					   r->vaddr + r->nr_pages * 4096 };

			for (int k = 0; k < 3; k++) {
				uint64_t nr = 16;
				const void *p = NULL;
				volatile uint8_t sink;

				if (ps_store_find(s, pid, at[k], &nr, &p) == PS_FOUND && p)
					sink = ((const uint8_t *)p)[nr * 4096 - 1];
				(void)sink;
			}
		}
		pagemap_index_free(&pi);
	}
	if (d)
		closedir(d);
}

int fuzz_one_input(const uint8_t *data, size_t size)
{
	struct opts o = {
		.command = "restore", .images_dir = fuzz_dir_path(), .show_path = fuzz_dir_path(),
		.status_fd = -1, .ghost_limit = DEFAULT_GHOST_LIMIT, .shell_job = true,
	};
	struct ps_store *s;

	if (!fuzz_unpack_set(data, size))
		return 0;
	cr_show(&o);
	restore_load(&o);
	if (!ps_store_images_load(fuzz_dir_fd(), &s)) {
		store_lookups(s);
		ps_store_free(s);
	}
	return 0;
}
