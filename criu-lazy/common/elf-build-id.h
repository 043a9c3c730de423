#ifndef CRIU_LAZY_COMMON_ELF_BUILD_ID_H
#define CRIU_LAZY_COMMON_ELF_BUILD_ID_H

#include <stddef.h>
#include <stdint.h>

/* A GNU build-id is 20 bytes (SHA-1) or 16 (MD5); more is not looked at. */
#define BUILD_ID_MAX_WORDS 16

/*
 * The build-id note of the 64-bit ELF file @path, as CRIU keeps it in
 * reg_file_entry.build_id: the note's bytes in 32-bit words, the last one
 * padded with zeros.  Returns the number of words, 0 for a file that is not
 * such an ELF file or has no note, or a negative errno.
 */
int elf_build_id(const char *path, uint32_t *words, size_t max_words);
/* The same of the file open at @fd (read with pread: its offset stays). */
int elf_build_id_fd(int fd, uint32_t *words, size_t max_words);

/* "hex" of @n words of a build-id into @buf (at least 8 * n + 1 bytes). */
void build_id_format(const uint32_t *words, size_t n, char *buf);

#endif
