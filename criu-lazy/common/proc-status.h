/*
 * /proc/PID/status (and fdinfo, in the same "Key:\tvalue" lines): a
 * field's value, the last number of a field (NSpid's: the id in the
 * innermost pid namespace).
 */
#ifndef CRIU_LAZY_COMMON_PROC_STATUS_H
#define CRIU_LAZY_COMMON_PROC_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The value after "@key:" at the start of a line of @text, or NULL. */
const char *proc_status_field(const char *text, const char *key);

/* The last number on the "@key:" line of @text, or -1 if there is no
 * such line or no number on it. */
long proc_status_last(const char *text, const char *key);

/* The four ids of a "Uid:" or "Gid:" line (real, effective, saved, fs). */
bool proc_status_ids(const char *text, const char *key, uint32_t v[4]);

/* A "Cap...:" line's 64 hex bits as two 32-bit words, low first. */
bool proc_status_caps(const char *text, const char *key, uint32_t w[2]);

#endif
