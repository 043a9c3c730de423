/*
 * The GNU build-id of an ELF file: the dump records it for each regular
 * file, the restore compares it (a rebuilt binary of the same size).  Only
 * the program headers' PT_NOTE segments are read, a few hundred bytes.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/elf-build-id.h"

#define NOTE_MAX 4096	/* a PT_NOTE segment larger than this is skipped */

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
	Elf64_Ehdr eh;
	int ret = 0;

	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
		return 0;
	for (unsigned int i = 0; i < eh.e_phnum && !ret; i++) {
		Elf64_Phdr ph;
		ssize_t n;

		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (off_t)i * sizeof(ph)) != sizeof(ph))
			break;
		if (ph.p_type != PT_NOTE || ph.p_filesz > NOTE_MAX)
			continue;
		n = pread(fd, notes, ph.p_filesz, ph.p_offset);
		if (n == (ssize_t)ph.p_filesz)
			ret = note_build_id(notes, n, words, max_words);
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
