/* /proc/PID/maps, parsed. */
#ifndef CRIU_LAZY_COMMON_PROC_MAPS_H
#define CRIU_LAZY_COMMON_PROC_MAPS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

struct proc_vma {
	uint64_t start, end;
	int prot;		/* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;		/* 's' rather than 'p' */
	uint64_t pgoff;		/* bytes */
	unsigned int dev_major, dev_minor;
	uint64_t ino;
	/* "" for anonymous, "[heap]", "/path (deleted)", ...: a string of its
	 * own, not a PATH_MAX array in each entry (4 KiB a VMA: the 2000 VMAs
	 * of a JVM were 8 MiB to fault in, 4.5 ms of a dump per task) */
	const char *path;
};

/*
 * Every mapping of pid (0 = this process), ascending.  *vmas is malloc'ed;
 * the caller frees it with proc_maps_free().  Returns 0, -ESRCH if there
 * is no such process, or another negative errno (logged).
 */
int proc_maps_read(pid_t pid, struct proc_vma **vmas, size_t *nr);

/* The array proc_maps_read() made, and its paths; NULL is nothing. */
void proc_maps_free(struct proc_vma *vmas, size_t nr);

#endif
