/*
 * units.h - parsing of the sizes users write in configs and on command lines
 * ("64M", "1GiB", "4096"). Stateless, so no locking.
 */
#ifndef EMM_UNITS_H
#define EMM_UNITS_H

#include <stdint.h>

/* Parses a size: digits with an optional K/M/G/T suffix (1024-based, case-insensitive,
 * optional trailing "B" or "iB"). 0 on success, -EINVAL otherwise (overflow too). */
int emm_parse_size(const char *text, uint64_t *out);

#endif
