/*
 * emmswap.c - the swap area tool: `emmswap format` writes a new area on a file
 * or block device, `emmswap info` describes areas (header, and used and free
 * slots from a descriptor scan). Single-threaded; areas are opened read-only
 * for info, so it is safe while emmd uses them. Format checks its arguments
 * before it touches anything; info prints strings from the header (label) and
 * the command line (paths) with C-style escapes, so one value is one line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "units.h"
#include "log.h"
#include "slot_alloc.h"
#include "swap_area.h"
#include "swap_index.h"

static void
usage(FILE *f)
{
    fprintf(f, "usage: emmswap format [--force] [--label LABEL] PATH [SIZE]\n"
               "       emmswap info PATH...\n"
               "       emmswap --help | --version\n"
               "\n"
               "format  writes a new swap area on PATH, a block device or a regular file\n"
               "        (created and preallocated when SIZE is given: 64M, 2G, ...). SIZE\n"
               "        is a whole number of 4096-byte pages, at least 1M. A filesystem,\n"
               "        Linux swap or emm swap signature, or any data in an existing file,\n"
               "        is kept unless --force.\n"
               "info    prints each area's uuid, label, size, used and free slots and state\n"
               "        (label and path with C-style escapes: \\n, \\t, \\\\, \\xNN).\n"
               "\n"
               "Exit status: 0 ok, 1 failure (refused, unreadable, corrupt), 2 usage error.\n");
}

/* A usage error: what was wrong is already said; point at --help. */
static int
usage_error(void)
{
    fprintf(stderr, "usage: emmswap format [--force] [--label LABEL] PATH [SIZE]\n"
                    "       emmswap info PATH...\n"
                    "Try 'emmswap --help' for more information.\n");
    return 2;
}

static int
cmd_format(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"label", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *label = NULL;
    unsigned flags = 0;
    uint64_t size = 0;
    uint8_t uuid[16];
    char us[37];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "fL:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': flags |= SWP_FORMAT_FORCE; break;
        case 'L': label = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return usage_error(); /* getopt named the option */
        }
    }
    if (argc - optind < 1) {
        fprintf(stderr, "emmswap format: missing PATH\n");
        return usage_error();
    }
    if (argc - optind > 2) {
        fprintf(stderr, "emmswap format: unexpected argument '%s' (expected PATH [SIZE])\n",
                argv[optind + 2]);
        return usage_error();
    }
    if (argc - optind == 2 && (emm_parse_size(argv[optind + 1], &size) < 0 || size == 0)) {
        fprintf(stderr, "emmswap format: bad size '%s' (e.g. 4096, 64M, 2G)\n", argv[optind + 1]);
        return usage_error();
    }
    if (size % SWP_PAGE_SIZE) {
        fprintf(stderr,
                "emmswap format: size '%s' (%llu bytes) is not a whole number of %u-byte pages "
                "(%llu or %llu would be); nothing was changed\n",
                argv[optind + 1], (unsigned long long)size, SWP_PAGE_SIZE,
                (unsigned long long)(size - size % SWP_PAGE_SIZE),
                (unsigned long long)(size - size % SWP_PAGE_SIZE + SWP_PAGE_SIZE));
        return 2;
    }
    if (size && size < SWP_USABLE_MIN) {
        fprintf(stderr,
                "emmswap format: size '%s' (%llu bytes) is too small for a usable swap area: "
                "the minimum is 1M (%llu bytes); nothing was changed\n",
                argv[optind + 1], (unsigned long long)size, (unsigned long long)SWP_USABLE_MIN);
        return 2;
    }
    if (label && strlen(label) >= SWP_LABEL_MAX) {
        fprintf(stderr, "emmswap format: label longer than %u bytes\n", SWP_LABEL_MAX - 1);
        return 2;
    }
    rc = swp_area_format(argv[optind], size, label, flags | SWP_FORMAT_USABLE, uuid);
    if (rc < 0) {
        /* swp_area_format logged the reason; only an allocation failure is unsaid */
        if (rc == -ENOMEM)
            fprintf(stderr, "emmswap: %s: not formatted: %s\n", argv[optind], strerror(-rc));
        return 1;
    }
    swp_uuid_str(uuid, us);
    printf("formatted %s: uuid %s\n", argv[optind], us);
    return 0;
}

/* Prints "PREFIXvalue\n" with value C-escaped: one value never spans lines. */
static void
print_escaped(const char *prefix, const char *v)
{
    fputs(prefix, stdout);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '\n': fputs("\\n", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                printf("\\x%02x", *p);
            else
                putchar(*p);
        }
    }
    putchar('\n');
}

static int
info_one(const char *path)
{
    struct swp_area *a;
    struct swp_alloc *al = NULL;
    struct swp_index *ix = NULL;
    struct swp_recover_stats rs;
    char us[37];
    int rc;

    rc = swp_area_open(path, SWP_OPEN_RDONLY, &a);
    if (rc < 0) {
        /* swp_area_open logged the reason (no signature, corrupt, truncated...) */
        if (rc == -ENOMEM)
            fprintf(stderr, "emmswap: %s: %s\n", path, strerror(-rc));
        return rc;
    }
    const struct swp_area_info *in = swp_area_info(a);
    if ((rc = swp_alloc_create(in->nslots, &al)) < 0 || (rc = swp_index_create(&ix)) < 0 ||
        (rc = swp_index_recover(a, al, ix, &rs)) < 0) {
        fprintf(stderr, "emmswap: %s: scanning the slots: %s\n", path, strerror(-rc));
        goto out;
    }
    swp_uuid_str(in->uuid, us);
    print_escaped("# ", path);
    print_escaped("path: ", path);
    printf("uuid: %s\n", us);
    print_escaped("label: ", in->label);
    printf("type: %s\n", in->blkdev ? "block device" : "file");
    printf("size: %llu\n", (unsigned long long)(in->size_pages * SWP_PAGE_SIZE));
    printf("page-size: %u\n", SWP_PAGE_SIZE);
    printf("slots: %llu\n", (unsigned long long)in->nslots);
    printf("used: %llu\n", (unsigned long long)swp_alloc_used(al));
    printf("free: %llu\n", (unsigned long long)swp_alloc_free(al));
    printf("objects: %llu\n", (unsigned long long)rs.objects);
    printf("stale: %llu\n", (unsigned long long)(rs.stale + rs.torn + rs.bad_data));
    printf("state: %s\n", in->was_clean ? "clean" : "dirty");
    printf("opens: %llu\n", (unsigned long long)in->open_count);
    printf("generation: %llu\n",
           (unsigned long long)(rs.max_gen > in->last_gen ? rs.max_gen : in->last_gen));
    printf("io: %s\n", in->direct ? "direct" : "buffered");
out:
    swp_index_destroy(ix);
    swp_alloc_destroy(al);
    swp_area_abandon(a);
    return rc;
}

static int
cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int failed = 0, c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        default: return usage_error(); /* getopt named the option ("--" ends options) */
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "emmswap info: missing PATH\n");
        return usage_error();
    }
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            printf("\n");
        if (info_one(argv[i]) < 0)
            failed = 1;
    }
    return failed;
}

int
main(int argc, char **argv)
{
    emm_log_init("emmswap", 0, EMM_LOG_NOTICE);
    if (argc < 2) {
        fprintf(stderr, "emmswap: no command given\n");
        return usage_error();
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("emmswap %s\n", EMM_VERSION);
        return 0;
    }
    /* getopt names the program as argv[0] in its messages: say which command */
    if (!strcmp(argv[1], "format")) {
        argv[1] = (char *)"emmswap format";
        return cmd_format(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "info")) {
        argv[1] = (char *)"emmswap info";
        return cmd_info(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (argv[1][0] == '-')
        fprintf(stderr, "emmswap: unknown option '%s'\n", argv[1]);
    else
        fprintf(stderr, "emmswap: unknown command '%s'\n", argv[1]);
    return usage_error();
}
