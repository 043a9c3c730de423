#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proc-status.h"

const char *proc_status_field(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ':') {
			p += klen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

long proc_status_last(const char *text, const char *key)
{
	const char *p = proc_status_field(text, key);
	long last = -1;
	char *end;

	while (p && *p && *p != '\n') {
		long n = strtol(p, &end, 10);

		if (end == p)
			break;
		last = n;
		p = end;
	}
	return last;
}

bool proc_status_ids(const char *text, const char *key, uint32_t v[4])
{
	const char *p = proc_status_field(text, key);

	return p && sscanf(p, "%u %u %u %u", &v[0], &v[1], &v[2], &v[3]) == 4;
}

bool proc_status_caps(const char *text, const char *key, uint32_t w[2])
{
	const char *p = proc_status_field(text, key);
	unsigned long long v;

	if (!p)
		return false;
	v = strtoull(p, NULL, 16);
	w[0] = (uint32_t)v;
	w[1] = (uint32_t)(v >> 32);
	return true;
}
