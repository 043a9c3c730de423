/*
 * test_images_sample's parts: main.c (the inventory, the tree, ids, fs,
 * the small images, main), core.c (the core of each thread), mm.c (the
 * memory map and the pages), files.c (files, fds, pipe data, ttys).  The
 * values test_images.py checks are the SAMPLE_* below.
 */
#ifndef CRIU_LAZY_TEST_UNIT_SAMPLE_H
#define CRIU_LAZY_TEST_UNIT_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#define PAGE 4096ULL

#define SAMPLE_IP		0x401a2bULL
#define SAMPLE_SP		0x7ffd5e3f1e28ULL
#define SAMPLE_HEAP		0x1c5d000ULL
#define SAMPLE_ANON		0x7f3a10000000ULL	/* 64 pages, lazy */
#define SAMPLE_STACK		0x7ffd5e3d2000ULL	/* 32 pages */
#define SAMPLE_VDSO		0x7ffd5e3fb000ULL
#define SAMPLE_PIPE_ID		51234

int write_core(int dirfd, uint64_t tid, bool leader, const char *comm);	/* core.c */
int write_mm(int dirfd, unsigned long pid, size_t nr_vmas);		/* mm.c */
int write_pagemap(int dirfd);
int write_files(int dirfd);						/* files.c */
int write_fdinfo(int dirfd, unsigned long files_id);
int write_pipes_data(int dirfd);
int write_tty_info(int dirfd);

#endif
