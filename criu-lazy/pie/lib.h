/* Freestanding helpers of the restorer blob. */
#ifndef CRIU_LAZY_PIE_LIB_H
#define CRIU_LAZY_PIE_LIB_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#endif
