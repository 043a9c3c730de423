/*
 * The GNU build-id of an ELF file: the dump records it for each regular
 * file, the restore compares it (a rebuilt binary of the same size).  Only
 * the program headers' PT_NOTE segments are read, a few hundred bytes.
 * The file's first 4 KiB come in one read: header, program headers and
 * build-id note are there in any usual binary or library (a pread each
 * was some fifteen syscalls a file); what lies past them is read apart.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/elf-build-id.h"

#define NOTE_MAX 4096	/* a PT_NOTE segment larger than this is skipped */
#define HEAD_SIZE 4096	/* read at once from offset 0 */

/* The file's start, as far as one read got it. */
struct elf_head {
	uint8_t buf[HEAD_SIZE];
	size_t len;
};

/* @len bytes at @off: from @h where it holds them, else a pread.  Whether
 * all of them were there. */
static bool read_at(int fd, const struct elf_head *h, void *dst, size_t len, off_t off)
{
	if (off >= 0 && (uint64_t)off + len <= h->len) {
		memcpy(dst, h->buf + off, len);
		return true;
	}
	return pread(fd, dst, len, off) == (ssize_t)len;
}

static size_t align4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* The build-id in the notes of @buf (@len bytes): words, or 0. */
static int note_build_id(const uint8_t *buf, size_t len, uint32_t *words, size_t max_words)
{
	size_t off = 0;

	while (off + sizeof(Elf64_Nhdr) <= len) {
		const Elf64_Nhdr *nh = (const Elf64_Nhdr *)(buf + off);
		size_t name = off + sizeof(*nh), desc = name + align4(nh->n_namesz);

		if (nh->n_namesz > len || nh->n_descsz > len || desc + nh->n_descsz > len)
			return 0;
		if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
		    !memcmp(buf + name, "GNU", 4) && nh->n_descsz &&
		    nh->n_descsz <= max_words * 4) {
			memset(words, 0, align4(nh->n_descsz));
			memcpy(words, buf + desc, nh->n_descsz);
			return align4(nh->n_descsz) / 4;
		}
		off = desc + align4(nh->n_descsz);
	}
	return 0;
}

int elf_build_id_fd(int fd, uint32_t *words, size_t max_words)
{
	uint8_t notes[NOTE_MAX];
	struct elf_head h;
	Elf64_Ehdr eh;
	ssize_t n;
	int ret = 0;

	n = pread(fd, h.buf, sizeof(h.buf), 0);
	h.len = n > 0 ? n : 0;
	if (!read_at(fd, &h, &eh, sizeof(eh), 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return 0;
	for (unsigned int i = 0; i < eh.e_phnum && !ret; i++) {
		Elf64_Phdr ph;

		if (!read_at(fd, &h, &ph, sizeof(ph), eh.e_phoff + (off_t)i * sizeof(ph)))
			break;
		if (ph.p_type != PT_NOTE || ph.p_filesz > NOTE_MAX)
			continue;
		if (read_at(fd, &h, notes, ph.p_filesz, ph.p_offset))
			ret = note_build_id(notes, ph.p_filesz, words, max_words);
	}
	return ret;
}

int elf_build_id(const char *path, uint32_t *words, size_t max_words)
{
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	ret = elf_build_id_fd(fd, words, max_words);
	close(fd);
	return ret;
}

void build_id_format(const uint32_t *words, size_t n, char *buf)
{
	const uint8_t *b = (const uint8_t *)words;

	for (size_t i = 0; i < n * 4; i++)
		sprintf(buf + 2 * i, "%02x", b[i]);
	buf[n * 8] = '\0';
}
