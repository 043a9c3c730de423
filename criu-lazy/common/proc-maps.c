#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define LOG_PREFIX "maps: "
#include "common/array.h"
#include "common/log.h"
#include "common/proc-maps.h"

#define MAPS_READ_BUF 4096

/* "start-end perms offset major:minor inode   path" */
static int parse_line(const char *line, struct proc_vma *v)
{
	char perms[5];
	int path_off = 0;

	/* not the whole path[]: touching 4 KiB per line cost page faults */
	memset(v, 0, offsetof(struct proc_vma, path));
	v->path[0] = '\0';
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
		   &v->start, &v->end, perms, &v->pgoff, &v->dev_major, &v->dev_minor,
		   &v->ino, &path_off) < 7)
		return -EINVAL;

	v->prot = (perms[0] == 'r' ? PROT_READ : 0) |
		  (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	if (path_off) {
		snprintf(v->path, sizeof(v->path), "%s", line + path_off);
		v->path[strcspn(v->path, "\n")] = '\0';
	}
	return 0;
}

int proc_maps_read(pid_t pid, struct proc_vma **vmas, size_t *nr)
{
	char path[64], *line = NULL, fbuf[MAPS_READ_BUF];
	struct proc_vma *arr = NULL;
	size_t cap = 0, n = 0, line_len = 0;
	FILE *f;
	int ret = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		if (errno != ENOENT)
			pr_perror("open %s", path);
		return ret == -ENOENT ? -ESRCH : ret;
	}
	/* stdio would read it by its st_blksize, 1 KiB: a syscall per dozen
	 * VMAs, where the kernel gives a page's worth to each */
	setvbuf(f, fbuf, _IOFBF, sizeof(fbuf));

	while (getline(&line, &line_len, f) > 0) {
		if (ARRAY_GROW(arr, cap, n + 1, 64)) {
			ret = -ENOMEM;
			goto out;
		}
		if (parse_line(line, &arr[n])) {
			pr_err("%s: cannot parse line '%s'", path, line);
			ret = -EINVAL;
			goto out;
		}
		n++;
	}
	if (ferror(f)) {
		ret = -errno;
		pr_perror("read %s", path);
	}
out:
	free(line);
	fclose(f);
	if (ret) {
		free(arr);
		return ret;
	}
	*vmas = arr;
	*nr = n;
	return 0;
}
