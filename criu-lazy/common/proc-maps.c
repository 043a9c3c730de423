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

/* the path of every anonymous VMA: never freed */
static const char no_path[] = "";

/* "start-end perms offset major:minor inode   path"; -ENOMEM or -EINVAL */
static int parse_line(const char *line, struct proc_vma *v)
{
	char perms[5];
	int path_off = 0;
	size_t len;

	memset(v, 0, sizeof(*v));
	v->path = no_path;
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
		   &v->start, &v->end, perms, &v->pgoff, &v->dev_major, &v->dev_minor,
		   &v->ino, &path_off) < 7)
		return -EINVAL;

	v->prot = (perms[0] == 'r' ? PROT_READ : 0) |
		  (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	len = path_off ? strcspn(line + path_off, "\n") : 0;
	if (len) {
		v->path = strndup(line + path_off, len);
		if (!v->path) {
			v->path = no_path;
			return -ENOMEM;
		}
	}
	return 0;
}

void proc_maps_free(struct proc_vma *vmas, size_t nr)
{
	for (size_t i = 0; vmas && i < nr; i++)
		if (vmas[i].path != no_path)
			free((char *)vmas[i].path);
	free(vmas);
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
		ret = parse_line(line, &arr[n]);
		if (ret) {
			if (ret == -ENOMEM)
				pr_err("%s: out of memory", path);
			else
				pr_err("%s: cannot parse line '%s'", path, line);
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
		proc_maps_free(arr, n);
		return ret;
	}
	*vmas = arr;
	*nr = n;
	return 0;
}
