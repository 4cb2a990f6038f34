/*
 * fuzz_replay.h - the replay side of a fuzz target built without libFuzzer:
 * reads each input file (or each file of a directory) whole and hands it to
 * LLVMFuzzerTestOneInput; `--make-corpus DIR` writes the target's seeds.
 * Shared by the targets in tests/fuzz/; single-threaded, no locking.
 */
#ifndef EMM_FUZZ_REPLAY_H
#define EMM_FUZZ_REPLAY_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 0, or -1 after saying why on stderr. */
static inline int
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0, n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap ? cap * 2 : 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb, cap = cap ? cap * 2 : 65536;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

/* Writes DIR/NAME: head (hlen bytes, may be 0) then img. 0, or -1 after saying why. */
static inline int
fuzz_write_seed(const char *dir, const char *name, const void *head, size_t hlen,
                const void *img, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (hlen && fwrite(head, 1, hlen, f) != hlen) || (len && fwrite(img, 1, len, f) != len)) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The whole main of a replaying target: `--make-corpus DIR` (when the target
 * has make_corpus), else every file named, or in a directory named. Exit
 * status 0 when at least one input ran. */
static inline int
fuzz_replay_main(const char *target, int argc, char **argv, int (*make_corpus)(const char *dir))
{
    int ran = 0;

    if (make_corpus != NULL && argc == 3 && strcmp(argv[1], "--make-corpus") == 0)
        return make_corpus(argv[2]) == 0 ? 0 : 1;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            if (run_file(argv[i]) < 0)
                return 1;
            ran++;
            continue;
        }
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (run_file(path) < 0) {
                closedir(d);
                return 1;
            }
            ran++;
        }
        closedir(d);
    }
    printf("%s: %d input(s) ran\n", target, ran);
    return ran ? 0 : 1;
}

#endif
