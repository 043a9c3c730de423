/*
 * A number from the environment: the knobs tests use to shorten a timeout
 * or to switch on a test hook (CRIU_LAZY_HANDSHAKE_TIMEOUT, ...).
 */
#ifndef CRIU_LAZY_COMMON_ENV_NUMBER_H
#define CRIU_LAZY_COMMON_ENV_NUMBER_H

#include <stdint.h>

/* The decimal number in @name, 1 to @max; 0 if unset, not all digits, 0 or
 * above @max (the caller's default applies). */
uint64_t env_number(const char *name, uint64_t max);

#endif
