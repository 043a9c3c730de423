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
