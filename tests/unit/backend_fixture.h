/*
 * backend_fixture.h - shared by the backend unit tests (test_backend, test_lmdb,
 * test_zstd): one hand-filled [fs t] configuration over a fresh state directory,
 * and a self-checking page pattern. Header-only (static inline); each test owns
 * its fixtures, so there is no locking.
 */
#ifndef EMM_TEST_BACKEND_FIXTURE_H
#define EMM_TEST_BACKEND_FIXTURE_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_host.h"

#define PS EMM_PAGE_SIZE

struct fix {
    char dir[64];
    struct emm_backend_args args;
    struct emm_backend_key kv[8];
    char spec[64];
    struct emm_backend *b;
    char err[512];
};

static inline int
fix_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* A config for "test.conf" ([fs t] at line 2, backend at line 3) whose state
 * directory is a new /tmp/emm-test-TAG-XXXXXX. */
static inline struct fix *
fix_new(const char *tag)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/emm-test-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(f->dir));
    f->args.file = "test.conf";
    f->args.state_dir = f->dir;
    f->args.fs_name = "t";
    f->args.line = 3;
    f->args.keys = f->kv;
    return f;
}

/* Closes the stack (if open) and removes the state directory. */
static inline void
fix_free(struct fix *f)
{
    emm_backend_close(f->b);
    nftw(f->dir, fix_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

/* Page content: every word says (object, page, version). */
static inline void
fill(void *buf, uint64_t obj, uint64_t page, uint32_t n, uint64_t version)
{
    uint64_t *w = buf;
    for (uint32_t p = 0; p < n; p++)
        for (unsigned i = 0; i < PS / 8; i++)
            w[p * (PS / 8) + i] = (obj << 40) ^ ((page + p) << 12) ^ (version << 56) ^ i;
}

static inline int
check(const void *buf, uint64_t obj, uint64_t page, uint32_t n, uint64_t version)
{
    const uint64_t *w = buf;
    for (uint32_t p = 0; p < n; p++)
        for (unsigned i = 0; i < PS / 8; i++)
            if (w[p * (PS / 8) + i] != ((obj << 40) ^ ((page + p) << 12) ^ (version << 56) ^ i))
                return 0;
    return 1;
}

static inline int
is_zero(const void *buf, size_t len)
{
    const unsigned char *c = buf;
    for (size_t i = 0; i < len; i++)
        if (c[i])
            return 0;
    return 1;
}

#endif
