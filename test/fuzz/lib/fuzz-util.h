/*
 * What the fuzz targets of test/fuzz/ share: a scratch directory of their
 * own, and the "image set" input format, which packs the files of an
 * image directory into one input so that libFuzzer can mutate a whole
 * dump at once.
 *
 * An image set is a sequence of files, each
 *     u8   name length (1..IMG_NAME_MAX-1)
 *     name (letters, digits, '.', '-', '_'; not starting with '.')
 *     u32  data length, little-endian (cut to what is left of the input)
 *     data
 * A malformed header ends the set: what came before it is unpacked.
 * scripts/fuzz-seed packs real dumps into this format.
 */
#ifndef CRIU_LAZY_FUZZ_UTIL_H
#define CRIU_LAZY_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Each target's work on one input, run chrooted into the scratch
 * directory (fuzz-util.c is libFuzzer's entry point). */
int fuzz_one_input(const uint8_t *data, size_t size);

/* Once per process: quiet logging, stdout to /dev/null, the scratch dir. */
void fuzz_init(void);
/* Around the work of one input: chrooted into the scratch directory (so
 * that a path named by an image can only be one of its files). */
void fuzz_enter(void);
void fuzz_leave(void);
/* The scratch directory: an O_DIRECTORY fd, and its path inside the chroot. */
int fuzz_dir_fd(void);
const char *fuzz_dir_path(void);
/* Empty the scratch directory. */
void fuzz_dir_clear(void);
/* Write one file of the scratch directory.  0 or -errno. */
int fuzz_write_file(const char *name, const uint8_t *data, size_t size);
/* Unpack an image set into the (cleared) scratch directory: the number
 * of files written. */
int fuzz_unpack_set(const uint8_t *data, size_t size);

/*
 * A small dump in the scratch directory, for the targets that fuzz a
 * protocol rather than the images: pstree.img with process FUZZ_PID and its
 * pagemap: FUZZ_LAZY_PAGES lazy pages at FUZZ_LAZY_ADDR (each filled with
 * its page number), then a present page.  0 or -errno.
 */
#define FUZZ_PID		1
#define FUZZ_LAZY_ADDR		0x10000ULL
#define FUZZ_LAZY_PAGES		8
int fuzz_write_small_dump(void);

#endif
