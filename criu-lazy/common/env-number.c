#include <errno.h>
#include <stdlib.h>

#include "common/env-number.h"

uint64_t env_number(const char *name, uint64_t max)
{
	const char *env = getenv(name);
	unsigned long long v;
	char *end;

	if (!env || *env < '0' || *env > '9')
		return 0;
	errno = 0;
	v = strtoull(env, &end, 10);
	return *end || errno || v > max ? 0 : v;
}
