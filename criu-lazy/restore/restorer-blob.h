/*
 * The restorer blob, embedded by the build (build/pie/restorer-blob.c from
 * criu-lazy/pie/): a flat, relocation-free image whose entry point is at
 * offset 0.  Offsets of the blob's exported symbols are relative to its
 * start.
 */
#ifndef CRIU_LAZY_RESTORE_RESTORER_BLOB_H
#define CRIU_LAZY_RESTORE_RESTORER_BLOB_H

extern const unsigned char restorer_blob[];
extern const unsigned long restorer_blob_size;

/* a `syscall` instruction, for the syscalls run after the final stop */
extern const unsigned long restorer_export_syscall_off;

#endif
