/*
 * Fuzz target: one image file of any type, read as `criu-lazy show FILE`
 * reads it (the framing, every record of the type's message, the raw data
 * after pipe, socket-queue and ghost-file records).
 *
 * Input: one file in the image-set format (fuzz-util.h): its name says its
 * type.  Seeds: every image of real dumps (scripts/fuzz --make-seeds).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>

#include "images/image.h"
#include "options.h"
#include "fuzz-util.h"

int fuzz_one_input(const uint8_t *data, size_t size)
{
	char path[2 * IMG_NAME_MAX];
	struct opts o = { .show_path = path };
	DIR *d;
	struct dirent *e;

	if (!fuzz_unpack_set(data, size))
		return 0;
	d = opendir(fuzz_dir_path());
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", fuzz_dir_path(), e->d_name);
		cr_show(&o);
		break;		/* the first file only */
	}
	if (d)
		closedir(d);
	return 0;
}
