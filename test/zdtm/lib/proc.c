/*
 * Reading /proc/self without malloc: whole files into caller buffers,
 * maps lines by address, stat and status fields; what a restore must give
 * an fd back (fd_snapshot, pipe_end).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdtmtst.h"

size_t read_file(const char *path, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %m", path);
	for (;;) {
		char extra;

		if (len + 1 >= size) {
			/* full: fine only if the file ends right here */
			n = read(fd, &extra, 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				break;
			close(fd);
			fail("%s does not fit in %zu bytes", path, size);
		}
		n = read(fd, buf + len, size - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			fail("read %s: %m", path);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

void write_file(const char *path, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("create %s: %m", path);
	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			fail("write %s: %m", path);
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd))
		fail("close %s: %m", path);
}

static void copy_line(const char *s, char *line, size_t size)
{
	size_t n = strcspn(s, "\n");

	if (n >= size)
		n = size - 1;
	memcpy(line, s, n);
	line[n] = '\0';
}

int maps_line_at(const char *maps, unsigned long addr, char *line, size_t size)
{
	const char *s = maps;

	while (*s) {
		if (strtoul(s, NULL, 16) == addr) {
			copy_line(s, line, size);
			return 0;
		}
		s = strchr(s, '\n');
		if (!s)
			break;
		s++;
	}
	return -1;
}

int maps_lines_in(const char *maps, unsigned long start, unsigned long end,
		  char *out, size_t size)
{
	const char *s = maps;
	size_t used = 0;
	int count = 0;

	out[0] = '\0';
	while (*s) {
		unsigned long vs, ve;
		size_t n = strcspn(s, "\n");

		if (sscanf(s, "%lx-%lx", &vs, &ve) == 2 && vs >= start && ve <= end) {
			if (used + n + 2 > size)
				fail("maps_lines_in: output buffer too small");
			memcpy(out + used, s, n);
			used += n;
			out[used++] = '\n';
			out[used] = '\0';
			count++;
		}
		s += n;
		if (*s)
			s++;
	}
	return count;
}

void maps_line_normalize(char *line)
{
	char *p = line, *ino, *path;
	int field;

	if (!strstr(line, "/dev/zero (deleted)") && !strstr(line, "/SYSV") &&
	    !strstr(line, "[anon_shmem"))
		return;
	/* columns: range perms offset dev inode path; the path is padded to a
	 * column that depends on the inode's width: "X path" for any inode */
	for (field = 0; field < 4; field++) {
		p += strcspn(p, " ");
		p += strspn(p, " ");
	}
	ino = p;
	path = ino + strspn(ino, "0123456789");
	path += strspn(path, " ");
	ino[0] = 'X';
	ino[1] = ' ';
	memmove(ino + 2, path, strlen(path) + 1);
}

static int bookkeeping_flag(const char *f)
{
	static const char *const flags[] = { "sd", "ac", "um", "uw", "ui" };

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strncmp(f, flags[i], 2))
			return 1;
	return 0;
}

void smaps_vmas_record(unsigned long start, unsigned long end, char *out, size_t size)
{
	static char smaps[1 << 20];
	const char *s = smaps;
	size_t used = 0;
	int inside = 0;

	read_file("/proc/self/smaps", smaps, sizeof(smaps));
	out[0] = '\0';
	while (*s && used < size) {
		size_t n = strcspn(s, "\n");
		unsigned long vs, ve;

		/* a VMA's first line: "start-end perms ..." (the other lines
		 * are "Name:   value") */
		if (sscanf(s, "%lx-%lx ", &vs, &ve) == 2 && strchr(s, '-') < s + 17) {
			inside = vs < end && ve > start;
			if (inside) {
				char line[512];

				snprintf(line, sizeof(line), "%.*s", (int)n, s);
				maps_line_normalize(line);
				used += snprintf(out + used, size - used, "%s\n", line);
			}
		} else if (inside && !strncmp(s, "VmFlags:", 8)) {
			const char *f = s + 8, *e = s + n;

			used += snprintf(out + used, size - used, "  flags:");
			for (f += strspn(f, " "); f + 2 <= e && used < size; f += 2, f += strspn(f, " "))
				if (!bookkeeping_flag(f))
					used += snprintf(out + used, size - used, " %.2s", f);
			if (used < size)
				used += snprintf(out + used, size - used, "\n");
		}
		s += n + (s[n] != '\0');
	}
	if (used >= size)
		fail("the VMAs' lines do not fit in %zu bytes", size);
}

unsigned long long proc_stat_field(int n)
{
	static char buf[4096];
	char *p;
	int i;

	read_file("/proc/self/stat", buf, sizeof(buf));
	p = strrchr(buf, ')');
	if (!p || n < 3)
		fail("cannot parse /proc/self/stat field %d", n);
	p += 2;		/* now at field 3 */
	for (i = 3; i < n; i++) {
		p = strchr(p, ' ');
		if (!p)
			fail("/proc/self/stat has no field %d", n);
		p++;
	}
	return strtoull(p, NULL, 10);
}

int proc_status_value(const char *key, char *val, size_t size)
{
	static char buf[8192];
	size_t klen = strlen(key);
	char *s = buf;

	read_file("/proc/self/status", buf, sizeof(buf));
	while (*s) {
		if (!strncmp(s, key, klen) && s[klen] == ':') {
			s += klen + 1;
			s += strspn(s, " \t");
			copy_line(s, val, size);
			return 0;
		}
		s = strchr(s, '\n');
		if (!s)
			break;
		s++;
	}
	return -1;
}

void link_read(const char *path, char *out, size_t size)
{
	ssize_t n = readlink(path, out, size - 1);

	if (n < 0)
		fail("readlink %s: %m", path);
	out[n] = '\0';
}

void fd_link_read(int fd, char *out, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	link_read(path, out, size);
}

void fd_snapshot_take(int fd, struct fd_snapshot *st)
{
	st->getfl = fcntl(fd, F_GETFL);
	st->getfd = fcntl(fd, F_GETFD);
	st->pos = lseek(fd, 0, SEEK_CUR);
	fd_link_read(fd, st->link, sizeof(st->link));
}

void fd_snapshot_expect(int fd, const struct fd_snapshot *st)
{
	struct fd_snapshot now;

	fd_snapshot_take(fd, &now);
	if (strcmp(now.link, st->link))
		fail("fd %d is %s, expected %s", fd, now.link, st->link);
	if (now.getfl != st->getfl || now.getfd != st->getfd)
		fail("fd %d: flags %#o/%#x, expected %#o/%#x", fd, now.getfl, now.getfd, st->getfl,
		     st->getfd);
	if (now.pos != st->pos)
		fail("fd %d: offset %lld, expected %lld", fd, (long long)now.pos,
		     (long long)st->pos);
}

void pipe_ends_record(const int *fds, size_t n, struct pipe_end *s)
{
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (fstat(fds[i], &st))
			fail("fstat %d: %m", fds[i]);
		s[i].ino = st.st_ino;
		s[i].getfl = fcntl(fds[i], F_GETFL);
		s[i].getfd = fcntl(fds[i], F_GETFD);
		if (ioctl(fds[i], FIONREAD, &s[i].nread))
			fail("FIONREAD %d: %m", fds[i]);
	}
}

void pipe_ends_expect(const int *fds, size_t n, const struct pipe_end *before,
		      const struct pipe_end *after, const char *kind)
{
	for (size_t i = 0; i < n; i++) {
		if (before[i].getfl != after[i].getfl)
			fail("fd %d: status flags %#o, expected %#o", fds[i], after[i].getfl,
			     before[i].getfl);
		if (before[i].getfd != after[i].getfd)
			fail("fd %d: fd flags %#x, expected %#x", fds[i], after[i].getfd,
			     before[i].getfd);
		if (before[i].nread != after[i].nread)
			fail("fd %d: %d bytes in the %s, expected %d", fds[i], after[i].nread, kind,
			     before[i].nread);
	}
}
