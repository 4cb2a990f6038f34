/*
 * units.c - size parsing shared by the config loader, the backends' keys and
 * the command-line tools. Stateless, so no locking.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>

int
emm_parse_size(const char *text, uint64_t *out)
{
    const char *p = text;
    uint64_t v = 0;
    unsigned shift = 0;

    if (!text || !isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    switch (tolower((unsigned char)*p)) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    default: break;
    }
    if (shift) {
        p++;
        if (*p == 'i' || *p == 'I') {
            p++;
            if (tolower((unsigned char)*p) != 'b')
                return -EINVAL;
        }
    }
    if (tolower((unsigned char)*p) == 'b')
        p++;
    if (*p != '\0')
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = v << shift;
    return 0;
}
