/*
 * sr_drivers.c - the SR drivers this build has, by type. Apart from sr.c's
 * shared helpers, so drivers never depend back on the table that names them.
 */
#include <string.h>
#include "sr.h"

static const struct sr_driver *const drivers[] = {&sr_file_driver};

const struct sr_driver *sr_driver_find(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < sizeof drivers / sizeof drivers[0]; i++)
		if (strcmp(drivers[i]->sd_type, type) == 0)
			return drivers[i];
	return NULL;
}

