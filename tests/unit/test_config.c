/*
 * test_config.c - emm_config_load and emm_parse_size: a good file, defaults,
 * path resolution, backend keys, [default-pager] (swap lines, deadlines),
 * backend = none, and every error with its "FILE:LINE:" prefix.
 * Configs are written into a mkdtemp directory that the group teardown removes.
 * Single-threaded.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "units.h"
#include "log.h"

static char tmp[256]; /* short: configs embed it several times */
static char cfgpath[PATH_MAX + 32];
static char err[1024];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Writes text as the config and loads it; returns the load's result. */
static int
load(const char *text, int check, struct emm_config **cfg)
{
    snprintf(cfgpath, sizeof(cfgpath), "%s/emmd.conf", tmp);
    write_file(cfgpath, text);
    err[0] = '\0';
    return emm_config_load(cfgpath, check, cfg, err, sizeof(err));
}

/* Asserts that loading text fails with -EINVAL (or want_rc), err starting with
 * "PATH:LINE: " (or "PATH: " for line 0) and containing every word given. */
static void
expect_error_rc(const char *text, int check, int want_rc, int line, const char *w1, const char *w2)
{
    struct emm_config *cfg = (struct emm_config *)1;
    char prefix[PATH_MAX + 64];
    int r = load(text, check, &cfg);

    if (line > 0)
        snprintf(prefix, sizeof(prefix), "%s:%d: ", cfgpath, line);
    else
        snprintf(prefix, sizeof(prefix), "%s: ", cfgpath);
    if (r != want_rc || strncmp(err, prefix, strlen(prefix)) != 0 || (w1 && !strstr(err, w1)) ||
        (w2 && !strstr(err, w2)))
        print_error("config:\n%s\ngot r=%d err='%s'\nwant r=%d prefix '%s' words '%s' '%s'\n",
                    text, r, err, want_rc, prefix, w1 ? w1 : "", w2 ? w2 : "");
    assert_int_equal(r, want_rc);
    assert_null(cfg);
    assert_memory_equal(err, prefix, strlen(prefix));
    if (w1)
        assert_non_null(strstr(err, w1));
    if (w2)
        assert_non_null(strstr(err, w2));
}

static void
expect_error(const char *text, int line, const char *w1, const char *w2)
{
    expect_error_rc(text, 0, -EINVAL, line, w1, w2);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int
group_setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/emm-test-config-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    /* Compare against getcwd's spelling of the directory (no symlinks). */
    char real[PATH_MAX];
    if (!realpath(tmp, real))
        return -1;
    if (strlen(real) >= sizeof(tmp))
        return -1;
    memcpy(tmp, real, strlen(real) + 1);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- emm_parse_size ---- */

static void
test_parse_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"4096", 4096},
        {"64K", 64 << 10},
        {"64k", 64 << 10},
        {"1M", 1 << 20},
        {"1MB", 1 << 20},
        {"1MiB", 1 << 20},
        {"1mib", 1 << 20},
        {"2G", UINT64_C(2) << 30},
        {"1T", UINT64_C(1) << 40},
        {"4096B", 4096},
        {"18446744073709551615", UINT64_MAX},
        {"16777215T", UINT64_C(16777215) << 40},
    };
    static const char *const bad[] = {
        "",     "-1",  "+1",    "abc",    "1X",   "1 M",  " 1", "1M ", "M",
        "1iB",  "1Mi", "1MiBx", "1KK",    "1.5M", "0x10", "1e6",
        "18446744073709551616", "16777216T", "99999999999999999999999",
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        assert_int_equal(emm_parse_size(good[i].s, &v), 0);
        assert_true(v == good[i].v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (emm_parse_size(bad[i], &v) != -EINVAL)
            print_error("accepted '%s'\n", bad[i]);
        assert_int_equal(emm_parse_size(bad[i], &v), -EINVAL);
    }
    assert_int_equal(emm_parse_size(NULL, &v), -EINVAL);
}

/* ---- good files ---- */

static void
test_full(void **state)
{
    struct emm_config *cfg;
    char want[PATH_MAX + 64];
    char cwd[PATH_MAX];

    (void)state;
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmp), 0);
    int r = load("; emmd configuration\n"
                 "# another comment\n"
                 "[emmd]\n"
                 "state-dir = var\n"
                 "  mount-root = /srv//mnt/./\n"
                 "control-socket = ./var//emmd.sock\n"
                 "pid-file=/run/x.pid\n"
                 "resident-limit = 512M\n"
                 "fuse-threads = 4\n"
                 "busy-poll = 0   # off\n"
                 "log-level = debug ; inline comment\n"
                 "\n"
                 "[fs scratch]\n"
                 "backend = memory\n"
                 "memory.limit = 4M\n"
                 "readahead = 128K\n"
                 "pager-threads = 8\n"
                 "\n"
                 "[ fs   cache-2_x ]   ; header comment\n"
                 "backend = error:file\n"
                 "mountpoint = sub/../cache\n"
                 "file.dir = /var/lib/x\n"
                 "error.rate = 0.5\n"
                 "pager.deadline = 250ms\n"
                 "[default-pager]\n"
                 "deadline = 2s\n",
                 0, &cfg);
    assert_int_equal(chdir(cwd), 0);
    if (r)
        print_error("%s\n", err);
    assert_int_equal(r, 0);
    assert_non_null(cfg);

    assert_string_equal(cfg->path, cfgpath);
    snprintf(want, sizeof(want), "%s/var", tmp);
    assert_string_equal(cfg->state_dir, want);
    assert_string_equal(cfg->mount_root, "/srv/mnt");
    snprintf(want, sizeof(want), "%s/var/emmd.sock", tmp);
    assert_string_equal(cfg->control_socket, want);
    assert_string_equal(cfg->pid_file, "/run/x.pid");
    assert_true(cfg->resident_limit == UINT64_C(512) << 20);
    assert_int_equal(cfg->fuse_threads, 4);
    assert_int_equal(cfg->busy_poll_us, 0);
    assert_int_equal(cfg->log_level, EMM_LOG_DEBUG);

    assert_int_equal(cfg->nfs, 2);
    struct emm_fs_config *a = &cfg->fs[0], *b = &cfg->fs[1];
    assert_string_equal(a->name, "scratch");
    assert_int_equal(a->line, 13);
    assert_string_equal(a->backend, "memory");
    assert_int_equal(a->backend_line, 14);
    assert_string_equal(a->mountpoint, "/srv/mnt/scratch");
    assert_int_equal(a->mountpoint_explicit, 0);
    assert_true(a->readahead == 128 << 10);
    assert_int_equal(a->pager_threads, 8);
    assert_int_equal(a->nbackend_keys, 1);
    assert_string_equal(a->backend_keys[0].key, "memory.limit");
    assert_string_equal(a->backend_keys[0].value, "4M");
    assert_int_equal(a->backend_keys[0].line, 15);
    assert_int_equal(a->temporary, 0);
    assert_true(a->pager_deadline_ms == 2000); /* [default-pager] comes later */

    assert_string_equal(b->name, "cache-2_x");
    assert_int_equal(b->line, 19);
    assert_string_equal(b->backend, "error:file");
    assert_int_equal(b->backend_line, 20);
    snprintf(want, sizeof(want), "%s/sub/../cache", tmp);
    assert_string_equal(b->mountpoint, want);
    assert_int_equal(b->mountpoint_explicit, 1);
    assert_true(b->readahead == 1 << 20);
    assert_int_equal(b->pager_threads, 2);
    assert_int_equal(b->nbackend_keys, 2);
    assert_string_equal(b->backend_keys[0].key, "file.dir");
    assert_string_equal(b->backend_keys[0].value, "/var/lib/x");
    assert_int_equal(b->backend_keys[0].line, 22);
    assert_string_equal(b->backend_keys[1].key, "error.rate");
    assert_string_equal(b->backend_keys[1].value, "0.5");
    assert_int_equal(b->backend_keys[1].line, 23);
    assert_true(b->pager_deadline_ms == 250); /* pager.* is not a backend key */
    assert_true(cfg->pager_deadline_ms == 2000);
    assert_string_equal(cfg->pageout_policy, "second-chance");
    emm_config_free(cfg);
}

static void
test_defaults(void **state)
{
    struct emm_config *cfg;

    (void)state;
    assert_int_equal(load("[fs a]\nbackend = memory\n", 0, &cfg), 0);
    assert_string_equal(cfg->state_dir, "/var/lib/emm");
    assert_string_equal(cfg->mount_root, "/run/emm");
    assert_string_equal(cfg->control_socket, "/var/lib/emm/emmd.sock");
    assert_string_equal(cfg->pid_file, "/var/lib/emm/emmd.pid");
    assert_true(cfg->resident_limit == UINT64_C(256) << 20);
    assert_int_equal(cfg->fuse_threads, 2);
    assert_int_equal(cfg->busy_poll_us, 50);
    assert_int_equal(cfg->log_level, EMM_LOG_INFO);
    assert_int_equal(cfg->nfs, 1);
    assert_string_equal(cfg->fs[0].mountpoint, "/run/emm/a");
    assert_int_equal(cfg->fs[0].mountpoint_explicit, 0);
    assert_true(cfg->fs[0].readahead == 1 << 20);
    assert_int_equal(cfg->fs[0].pager_threads, 2);
    assert_int_equal(cfg->fs[0].nbackend_keys, 0);
    assert_null(cfg->fs[0].backend_keys);
    assert_int_equal(cfg->fs[0].temporary, 0);
    assert_true(cfg->fs[0].pager_deadline_ms == 5000);
    assert_string_equal(cfg->pageout_policy, "second-chance");
    assert_int_equal(cfg->nswaps, 0);
    assert_null(cfg->swaps);
    assert_true(cfg->pager_deadline_ms == 5000);
    assert_int_equal(cfg->dpager_threads, 2);
    emm_config_free(cfg);

    /* socket and pid file follow state-dir, whatever the order of sections */
    assert_int_equal(load("[fs a]\nbackend = memory\n[emmd]\nstate-dir = /x/y/\nmount-root=/\n",
                          0, &cfg),
                     0);
    assert_string_equal(cfg->control_socket, "/x/y/emmd.sock");
    assert_string_equal(cfg->pid_file, "/x/y/emmd.pid");
    assert_string_equal(cfg->fs[0].mountpoint, "/a");
    emm_config_free(cfg);

    /* limits at both ends, a BOM, CRLF line ends */
    assert_int_equal(load("\xEF\xBB\xBF[emmd]\r\nresident-limit = 1M\r\nfuse-threads = 64\r\n"
                          "busy-poll = 10000\r\nlog-level = error\r\n"
                          "[fs a]\r\nbackend = m\r\nreadahead = 64M\r\npager-threads = 1\r\n"
                          "[fs b]\nbackend = m\nreadahead = 0\npager-threads=64\n",
                          0, &cfg),
                     0);
    assert_true(cfg->resident_limit == 1 << 20);
    assert_int_equal(cfg->fuse_threads, 64);
    assert_int_equal(cfg->busy_poll_us, 10000);
    assert_int_equal(cfg->log_level, EMM_LOG_ERR);
    assert_true(cfg->fs[0].readahead == 64 << 20);
    assert_int_equal(cfg->fs[0].pager_threads, 1);
    assert_true(cfg->fs[1].readahead == 0);
    assert_int_equal(cfg->fs[1].pager_threads, 64);
    emm_config_free(cfg);

    emm_config_free(NULL);
}

static void
test_default_pager(void **state)
{
    struct emm_config *cfg;
    char want[PATH_MAX + 64];
    char cwd[PATH_MAX];

    (void)state;
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmp), 0);
    int r = load("[fs tmp]\n"
                 "backend = none\n"
                 "pager.deadline = 3600s\n"
                 "[emmd]\n"
                 "pageout.policy = s3-fifo\n"
                 "[default-pager]\n"
                 "swap = /dev/vdb priority=10\n"
                 "swap = swap//area.img 64M\n"
                 "swap =   /srv/s2\t1G   priority=-1   ; comment\n"
                 "swap = /srv/s3 priority=32767 1048576\n"
                 "deadline = 10\n"
                 "threads = 16\n"
                 "[fs p]\n"
                 "backend = memory\n"
                 "[fs q]\n"
                 "backend = memory\n"
                 "pager.deadline = 10ms\n",
                 0, &cfg);
    assert_int_equal(chdir(cwd), 0);
    if (r)
        print_error("%s\n", err);
    assert_int_equal(r, 0);
    assert_string_equal(cfg->pageout_policy, "s3-fifo");
    assert_true(cfg->pager_deadline_ms == 10);
    assert_int_equal(cfg->dpager_threads, 16);
    assert_int_equal(cfg->nswaps, 4);
    assert_string_equal(cfg->swaps[0].path, "/dev/vdb");
    assert_true(cfg->swaps[0].size == 0);
    assert_int_equal(cfg->swaps[0].priority, 10);
    assert_int_equal(cfg->swaps[0].line, 7);
    snprintf(want, sizeof(want), "%s/swap/area.img", tmp);
    assert_string_equal(cfg->swaps[1].path, want);
    assert_true(cfg->swaps[1].size == UINT64_C(64) << 20);
    assert_int_equal(cfg->swaps[1].priority, 0);
    assert_int_equal(cfg->swaps[1].line, 8);
    assert_string_equal(cfg->swaps[2].path, "/srv/s2");
    assert_true(cfg->swaps[2].size == UINT64_C(1) << 30);
    assert_int_equal(cfg->swaps[2].priority, -1);
    assert_string_equal(cfg->swaps[3].path, "/srv/s3");
    assert_true(cfg->swaps[3].size == 1 << 20);
    assert_int_equal(cfg->swaps[3].priority, 32767);

    assert_int_equal(cfg->nfs, 3);
    assert_int_equal(cfg->fs[0].temporary, 1);
    assert_string_equal(cfg->fs[0].backend, "none");
    assert_int_equal(cfg->fs[0].backend_line, 2);
    assert_int_equal(cfg->fs[0].nbackend_keys, 0);
    assert_true(cfg->fs[0].pager_deadline_ms == 3600000);
    assert_int_equal(cfg->fs[1].temporary, 0);
    assert_true(cfg->fs[1].pager_deadline_ms == 10); /* the default pager's */
    assert_true(cfg->fs[2].pager_deadline_ms == 10);
    emm_config_free(cfg);

    /* every policy name; an empty [default-pager] keeps the defaults */
    static const char *const policies[] = {"second-chance", "fifo", "s3-fifo", "lru"};
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[emmd]\npageout.policy = %s\n[default-pager]\n[fs a]\nbackend = m\n",
                 policies[i]);
        assert_int_equal(load(text, 0, &cfg), 0);
        assert_string_equal(cfg->pageout_policy, policies[i]);
        assert_int_equal(cfg->nswaps, 0);
        assert_true(cfg->pager_deadline_ms == 5000);
        assert_int_equal(cfg->dpager_threads, 2);
        emm_config_free(cfg);
    }

    /* durations: bare digits are ms, both ends of the range */
    static const struct {
        const char *s;
        uint64_t ms;
    } durations[] = {{"10ms", 10}, {"3600000", 3600000}, {"1s", 1000}, {"01500", 1500},
                     {"3600000ms", 3600000}, {"3600s", 3600000}};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[fs a]\nbackend = m\npager.deadline = %s\n",
                 durations[i].s);
        assert_int_equal(load(text, 0, &cfg), 0);
        assert_true(cfg->fs[0].pager_deadline_ms == durations[i].ms);
        assert_true(cfg->pager_deadline_ms == 5000);
        emm_config_free(cfg);
    }
}

static void
test_check_paths_ok(void **state)
{
    struct emm_config *cfg;
    char text[4096], path[PATH_MAX + 64];
    struct stat st;

    (void)state;
    snprintf(path, sizeof(path), "%s/mnt-ok", tmp);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/explicit", tmp);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(text, sizeof(text),
             "[emmd]\nstate-dir = %s/state/deep/er\nmount-root = %s/mnt-ok\n"
             "[fs a]\nbackend = memory\n"
             "[fs b]\nbackend = memory\nmountpoint = %s/explicit\n",
             tmp, tmp, tmp);
    int r = load(text, 1, &cfg);
    if (r)
        print_error("%s\n", err);
    assert_int_equal(r, 0);
    snprintf(path, sizeof(path), "%s/state/deep/er", tmp);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/mnt-ok/a", tmp);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof(path), "%s/mnt-ok/b", tmp);
    assert_int_equal(stat(path, &st), -1); /* b has its own mountpoint */
    emm_config_free(cfg);

    /* a second load finds everything in place */
    assert_int_equal(load(text, 1, &cfg), 0);
    emm_config_free(cfg);
}

/* ---- errors ---- */

static void
test_err_open(void **state)
{
    struct emm_config *cfg = (struct emm_config *)1;
    char path[PATH_MAX + 64], want[PATH_MAX + 128];

    (void)state;
    snprintf(path, sizeof(path), "%s/no-such.conf", tmp);
    assert_int_equal(emm_config_load(path, 0, &cfg, err, sizeof(err)), -ENOENT);
    assert_null(cfg);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
}

static void
test_err_sections(void **state)
{
    (void)state;
    expect_error("[emmd]\n[bogus]\n", 2, "unknown section", "[bogus]");
    expect_error("[EMMD]\n", 1, "unknown section", NULL);
    expect_error("[fsx]\n", 1, "unknown section", NULL);
    expect_error("[default_pager]\n", 1, "unknown section", "want [emmd], [default-pager] or");
    expect_error("[fs]\nbackend = memory\n", 1, "[fs NAME]", NULL);
    expect_error("[fs a/b]\nbackend = memory\n", 1, "bad filesystem name", "a/b");
    expect_error("[fs a b]\nbackend = memory\n", 1, "bad filesystem name", NULL);
    expect_error("[fs "
                 "a123456789a123456789a123456789a123456789a123456789a123456789abcde]\n",
                 1, "bad filesystem name", NULL);
    expect_error("[emmd]\n\n[emmd]\n", 3, "duplicate section", "line 1");
    expect_error("[emmd\n", 1, "']'", NULL);
    expect_error("[emmd] x\n", 1, "after ']'", NULL);
    /* a name of exactly 64 characters is fine */
    struct emm_config *cfg;
    assert_int_equal(load("[fs a123456789a123456789a123456789a123456789a123456789a123456789abcd]\n"
                          "backend = memory\n",
                          0, &cfg),
                     0);
    emm_config_free(cfg);
}

static void
test_err_keys(void **state)
{
    (void)state;
    expect_error("[emmd]\nfoo = 1\n", 2, "unknown key 'foo'", "[emmd]");
    expect_error("[fs a]\nbackend = memory\nspeed = 3\n", 3, "unknown key 'speed'", "[fs a]");
    expect_error("[emmd]\nmemory.limit = 3\n", 2, "unknown key 'memory.limit'", "[emmd]");
    expect_error("[emmd]\nfuse-threads = 2\nfuse-threads = 3\n", 3, "duplicate key 'fuse-threads'",
                 "line 2");
    expect_error("[fs a]\nbackend = memory\nbackend = null\n", 3, "duplicate key 'backend'",
                 "[fs a]");
    expect_error("[fs a]\nbackend = memory\nmemory.limit = 1M\n\nmemory.limit = 2M\n", 5,
                 "duplicate key 'memory.limit'", "line 3");
    expect_error("x = 1\n[fs a]\nbackend = memory\n", 1, "outside any section", "'x'");
    expect_error("\n\n[emmd]\njunk\n", 4, "expected", NULL);
    expect_error("[emmd]\njunk ; = x\n", 2, "expected", NULL);
    /* an indented key is a key, not a continuation line */
    expect_error("[fs a]\nbackend = memory\n    bogus = 1\n", 3, "unknown key 'bogus'", NULL);
}

static void
test_err_values(void **state)
{
    (void)state;
    expect_error("[emmd]\nresident-limit = 512K\n", 2, "resident-limit", "'512K'");
    expect_error("[emmd]\nresident-limit = 1048577\n", 2, "resident-limit", "'1048577'");
    expect_error("[emmd]\nresident-limit = lots\n", 2, "resident-limit", "'lots'");
    expect_error("[emmd]\nresident-limit = 99999999999999999999\n", 2, "resident-limit",
                 "'99999999999999999999'");
    expect_error("[emmd]\nresident-limit =\n", 2, "resident-limit", "''");
    expect_error("[emmd]\nfuse-threads = 0\n", 2, "fuse-threads", "'0'");
    expect_error("[emmd]\nfuse-threads = 65\n", 2, "fuse-threads", "'65'");
    expect_error("[emmd]\nfuse-threads = -1\n", 2, "fuse-threads", "'-1'");
    expect_error("[emmd]\nfuse-threads = 2x\n", 2, "fuse-threads", "'2x'");
    expect_error("[emmd]\nbusy-poll = 10001\n", 2, "busy-poll", "'10001'");
    expect_error("[emmd]\nlog-level = loud\n", 2, "log-level", "'loud'");
    expect_error("[emmd]\nstate-dir =\n", 2, "empty value", "state-dir");
    expect_error("[fs a]\nbackend = memory\nreadahead = 65M\n", 3, "readahead", "'65M'");
    expect_error("[fs a]\nbackend = memory\nreadahead = 1.5M\n", 3, "readahead", "'1.5M'");
    expect_error("[fs a]\nbackend = memory\npager-threads = 0\n", 3, "pager-threads", "'0'");
    expect_error("[fs a]\nbackend = memory\npager-threads = 65\n", 3, "pager-threads", "'65'");
    expect_error("[fs a]\nbackend =\n", 2, "empty value", "backend");
    expect_error("[fs a]\nbackend = memory\nmountpoint =\n", 3, "empty value", "mountpoint");
}

static void
test_err_fs(void **state)
{
    (void)state;
    expect_error("[fs a]\nbackend = memory\n[fs a]\nbackend = null\n", 3,
                 "duplicate filesystem", "line 1");
    expect_error("[fs a]\nbackend = memory\nmountpoint = /x\n"
                 "[fs b]\nbackend = memory\nmountpoint = /x/\n",
                 6, "same mountpoint", "[fs a]");
    /* explicit mountpoint equal to another's default one */
    expect_error("[emmd]\nmount-root = /m\n[fs a]\nbackend = memory\n"
                 "[fs b]\nbackend = memory\nmountpoint = /m/a\n",
                 7, "same mountpoint", "/m/a");
    /* default mountpoint equal to an explicit one: names b's header line */
    expect_error("[fs a]\nbackend = memory\nmountpoint = /run/emm/b\n[fs b]\nbackend = memory\n",
                 4, "same mountpoint", NULL);
    expect_error("[emmd]\n\n[fs a]\nreadahead = 1M\nmemory.limit = 1M\n", 3, "no backend",
                 "[fs a]");
    expect_error("[fs a]\nbackend = memory\n[fs empty]\n", 3, "no backend", "[fs empty]");
    expect_error("[emmd]\nfuse-threads = 2\n", 0, "no [fs NAME] section", NULL);
    expect_error("", 0, "no [fs NAME] section", NULL);
    expect_error("; only a comment\n", 0, "no [fs NAME] section", NULL);
}

static void
test_err_default_pager(void **state)
{
    (void)state;
    const char *fs = "[fs a]\nbackend = memory\n";
    char text[1024];

#define WITH_FS(body) (snprintf(text, sizeof(text), "%s%s", fs, body), text)
    expect_error(WITH_FS("[emmd]\npageout.policy = clock\n"), 4, "pageout.policy",
                 "'clock' for pageout.policy (want second-chance | fifo | s3-fifo | lru)");
    expect_error(WITH_FS("[emmd]\npageout.policy = lru\npageout.policy = lru\n"), 5,
                 "duplicate key 'pageout.policy'", "line 4");
    expect_error(WITH_FS("[default-pager]\n\n[default-pager]\n"), 5,
                 "duplicate section [default-pager]", "first on line 3");
    expect_error(WITH_FS("[default-pager]\nspeed = 1\n"), 4,
                 "unknown key 'speed' in [default-pager]", NULL);
    expect_error(WITH_FS("[default-pager]\nthreads = 2\nthreads = 3\n"), 5,
                 "duplicate key 'threads' in [default-pager]", "line 4");
    expect_error(WITH_FS("[default-pager]\nthreads = 0\n"), 4, "threads", "'0'");
    expect_error(WITH_FS("[default-pager]\nthreads = 17\n"), 4, "threads", "1..16");
    expect_error(WITH_FS("[default-pager]\ndeadline = 9ms\n"), 4, "deadline", "'9ms'");
    expect_error(WITH_FS("[default-pager]\ndeadline = 3601s\n"), 4, "deadline", "10ms..3600s");
    expect_error(WITH_FS("[default-pager]\ndeadline = 3600001\n"), 4, "deadline", NULL);
    expect_error(WITH_FS("[default-pager]\ndeadline = 5m\n"), 4, "deadline", "'5m'");
    expect_error(WITH_FS("[default-pager]\ndeadline = 1.5s\n"), 4, "deadline", NULL);
    expect_error(WITH_FS("[default-pager]\ndeadline = s\n"), 4, "deadline", NULL);
    expect_error(WITH_FS("[default-pager]\ndeadline = 99999999999999999999999s\n"), 4,
                 "deadline", NULL);
    expect_error(WITH_FS("[default-pager]\ndeadline = 5 s\n"), 4, "deadline", NULL);
    expect_error(WITH_FS("[default-pager]\nswap =\n"), 4, "empty value for swap", NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s 64M bogus\n"), 4, "unknown token 'bogus'",
                 NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s 64M 128M\n"), 4, "unknown token '128M'",
                 NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s prio=1\n"), 4, "unknown token 'prio=1'",
                 NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s priority=1 priority=2\n"), 4,
                 "unknown token 'priority=2'", NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s 512K\n"), 4, "bad size '512K'", ">= 1M");
    expect_error(WITH_FS("[default-pager]\nswap = /s 1048577\n"), 4, "bad size '1048577'",
                 "4096");
    expect_error(WITH_FS("[default-pager]\nswap = /s 12Q\n"), 4, "bad size '12Q'", NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s priority=-2\n"), 4, "bad priority '-2'",
                 "-1..32767");
    expect_error(WITH_FS("[default-pager]\nswap = /s priority=32768\n"), 4,
                 "bad priority '32768'", NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s priority=\n"), 4, "bad priority ''", NULL);
    expect_error(WITH_FS("[default-pager]\nswap = /s/x 1M\n\nswap = /s//x/ 2M\n"), 6,
                 "duplicate swap /s/x", "first on line 4");
    expect_error(WITH_FS("[fs b]\nbackend = memory\npager.colour = red\n"), 5,
                 "unknown key 'pager.colour' in [fs b]", NULL);
    expect_error(WITH_FS("[fs b]\nbackend = memory\npager.deadline = 1s\npager.deadline = 2s\n"),
                 6, "duplicate key 'pager.deadline'", "line 5");
    expect_error(WITH_FS("[fs b]\nbackend = memory\npager.deadline = 0\n"), 5, "pager.deadline",
                 "'0'");
    expect_error(WITH_FS("[emmd]\npager.deadline = 1s\n"), 4, "unknown key 'pager.deadline'",
                 "[emmd]");

    /* backend = none needs swap, wherever [default-pager] is; names the backend line */
    expect_error(WITH_FS("[fs t]\n\nbackend = none\n"), 5, "backend = none needs swap",
                 "'swap = PATH SIZE' to [default-pager]");
    expect_error(WITH_FS("[fs t]\nbackend = none\n[default-pager]\nthreads = 2\n"), 4,
                 "needs swap", NULL);
    /* ...and takes no backend keys, before or after the backend line */
    expect_error(WITH_FS("[fs t]\nbackend = none\nmemory.limit = 1M\n"), 5,
                 "key 'memory.limit' in [fs t]: backend none takes no keys", NULL);
    expect_error(WITH_FS("[fs t]\nerror.rate = 1\nbackend = none\n"), 4,
                 "key 'error.rate' in [fs t]: backend none takes no keys", NULL);
    /* the key error comes first: it is found during the parse */
    expect_error(WITH_FS("[fs t]\nbackend = none\nx.y = 1\n[default-pager]\nswap = /s 1M\n"), 5,
                 "backend none takes no keys", NULL);
#undef WITH_FS

    /* a none filesystem with a swap line is fine */
    struct emm_config *cfg;
    assert_int_equal(load("[default-pager]\nswap = /s 1M\n[fs t]\nbackend = none\n", 0, &cfg), 0);
    assert_int_equal(cfg->fs[0].temporary, 1);
    emm_config_free(cfg);
}

static void
test_err_first_wins(void **state)
{
    (void)state;
    /* two errors: only the first is reported */
    expect_error("[emmd]\nfuse-threads = 0\nbogus = 1\n[nope]\n", 2, "fuse-threads", NULL);
    expect_error("[emmd]\nbogus = 1\nfuse-threads = 0\n", 2, "bogus", NULL);
    /* a parse error comes before whole-file checks */
    expect_error("[fs a]\n[fs b]\nbackend = memory\nx\n", 4, "expected", NULL);
}

static void
test_err_long_line(void **state)
{
    char text[1024];

    (void)state;
    int n = snprintf(text, sizeof(text), "[fs a]\nbackend = memory\nfile.dir = /");
    memset(text + n, 'x', 400);
    snprintf(text + n + 400, sizeof(text) - (size_t)n - 400, "\n");
    expect_error(text, 3, "too long", NULL);

    /* long comments, on their own line or after a key, are fine */
    struct emm_config *cfg;
    n = snprintf(text, sizeof(text), "[fs a]\n# ");
    memset(text + n, 'c', 400);
    n += 400;
    n += snprintf(text + n, sizeof(text) - (size_t)n, "\nbackend = memory ; ");
    memset(text + n, 'c', 300);
    snprintf(text + n + 300, sizeof(text) - (size_t)n - 300, "\n");
    assert_int_equal(load(text, 0, &cfg), 0);
    assert_string_equal(cfg->fs[0].backend, "memory");
    emm_config_free(cfg);
}

static void
test_err_paths(void **state)
{
    char text[4096], path[PATH_MAX + 64];

    (void)state;
    snprintf(path, sizeof(path), "%s/mnt", tmp);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/afile", tmp);
    write_file(path, "x");

    /* explicit mountpoint missing: names the mountpoint line */
    snprintf(text, sizeof(text),
             "[emmd]\nstate-dir = %s/st\nmount-root = %s/mnt\n"
             "[fs a]\nbackend = memory\nmountpoint = %s/missing\n",
             tmp, tmp, tmp);
    expect_error_rc(text, 1, -ENOENT, 6, "mountpoint", "/missing");
    /* explicit mountpoint not a directory */
    snprintf(text, sizeof(text),
             "[emmd]\nstate-dir = %s/st\n[fs a]\nbackend = memory\nmountpoint = %s/afile\n", tmp,
             tmp);
    expect_error_rc(text, 1, -ENOTDIR, 5, "mountpoint", "afile");
    /* the same file loads without check_paths */
    struct emm_config *cfg;
    assert_int_equal(load(text, 0, &cfg), 0);
    emm_config_free(cfg);

    /* mount-root missing: names its line */
    snprintf(text, sizeof(text),
             "[emmd]\nstate-dir = %s/st\n\nmount-root = %s/nope\n[fs a]\nbackend = memory\n", tmp,
             tmp);
    expect_error_rc(text, 1, -ENOENT, 4, "mount-root", "/nope");
    /* mount-root a file */
    snprintf(text, sizeof(text),
             "[emmd]\nstate-dir = %s/st\nmount-root = %s/afile\n[fs a]\nbackend = memory\n", tmp,
             tmp);
    expect_error_rc(text, 1, -ENOTDIR, 3, "mount-root", NULL);
    /* default mount-root: line 0 (only testable where /run/emm does not exist) */
    struct stat st;
    if (stat("/run/emm", &st) < 0 && errno == ENOENT) {
        snprintf(text, sizeof(text), "[emmd]\nstate-dir = %s/st\n[fs a]\nbackend = memory\n", tmp);
        expect_error_rc(text, 1, -ENOENT, 0, "mount-root", "/run/emm");
    }
    /* state-dir cannot be created: names its line */
    snprintf(text, sizeof(text),
             "[emmd]\nmount-root = %s/mnt\nstate-dir = %s/afile/state\n[fs a]\nbackend = memory\n",
             tmp, tmp);
    expect_error_rc(text, 1, -ENOTDIR, 3, "state-dir", "afile/state");
    /* mount-root/NAME cannot be created (a file is in the way): names the header */
    snprintf(path, sizeof(path), "%s/mnt/blocked", tmp);
    write_file(path, "x");
    snprintf(text, sizeof(text),
             "[emmd]\nstate-dir = %s/st\nmount-root = %s/mnt\n\n[fs blocked]\nbackend = memory\n",
             tmp, tmp);
    expect_error_rc(text, 1, -ENOTDIR, 5, "mountpoint", "blocked");
}

/* Issue 15: a control socket that cannot fit sockaddr_un, the mount-over key,
 * private directories, and a check (-n) that creates nothing. */
static void
test_hardening(void **state)
{
    char text[4096], path[PATH_MAX + 64], longdir[200];
    struct emm_config *cfg;
    struct stat st;

    (void)state;
    /* 108 bytes of path do not fit sun_path (107 and a NUL do) */
    memset(longdir, 'd', 100);
    longdir[100] = '\0';
    snprintf(text, sizeof(text), "[emmd]\nstate-dir = /x\ncontrol-socket = /%s/emmd.sock\n"
             "[fs a]\nbackend = memory\n", longdir);
    expect_error_rc(text, 0, -ENAMETOOLONG, 3, "control-socket", "at most 107");
    /* a directory too long for the temporary bind directory, though the path fits */
    snprintf(text, sizeof(text), "[emmd]\nstate-dir = /x\ncontrol-socket = /%.95s/s\n"
             "[fs a]\nbackend = memory\n", longdir);
    expect_error_rc(text, 0, -ENAMETOOLONG, 3, "control-socket", "directory name");
    snprintf(text, sizeof(text), "[emmd]\nstate-dir = /x\ncontrol-socket = /%.90s/s\n"
             "[fs a]\nbackend = memory\n", longdir);
    assert_int_equal(load(text, 0, &cfg), 0);
    emm_config_free(cfg);

    /* mount-over: yes/no, default no, anything else refused with its line */
    assert_int_equal(load("[fs a]\nbackend = memory\nmount-over = yes\n[fs b]\nbackend = memory\n",
                          0, &cfg), 0);
    assert_int_equal(cfg->fs[0].mount_over, 1);
    assert_int_equal(cfg->fs[1].mount_over, 0);
    emm_config_free(cfg);
    expect_error("[fs a]\nbackend = memory\nmount-over = perhaps\n", 3, "mount-over", "perhaps");

    /* check only: a missing state-dir and mount-root/NAME are fine and not created */
    snprintf(path, sizeof(path), "%s/hmnt", tmp);
    mkdir(path, 0755);
    snprintf(text, sizeof(text), "[emmd]\nstate-dir = %s/hstate/deep\nmount-root = %s/hmnt\n"
             "control-socket = %s/hsock/s\npid-file = %s/hpid/p\n[fs a]\nbackend = memory\n",
             tmp, tmp, tmp, tmp);
    assert_int_equal(load(text, EMM_CONFIG_CHECK_PATHS, &cfg), 0);
    emm_config_free(cfg);
    snprintf(path, sizeof(path), "%s/hstate", tmp);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/hmnt/a", tmp);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/hsock", tmp);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "%s/hpid", tmp);
    assert_int_equal(stat(path, &st), -1);
    /* creating: all of them, private */
    assert_int_equal(load(text, EMM_CONFIG_CREATE_PATHS, &cfg), 0);
    emm_config_free(cfg);
    snprintf(path, sizeof(path), "%s/hstate/deep", tmp);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/hpid", tmp);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 022, 0);

    /* a state-dir writable by others is refused, naming it and the fix, in both modes */
    snprintf(path, sizeof(path), "%s/hstate/deep", tmp);
    assert_int_equal(chmod(path, 0777), 0);
    expect_error_rc(text, EMM_CONFIG_CHECK_PATHS, -EPERM, 2, "hstate/deep", "chmod go-w");
    expect_error_rc(text, EMM_CONFIG_CREATE_PATHS, -EPERM, 2, "state-dir", "others");
    /* sticky does not make a state-dir private */
    assert_int_equal(chmod(path, 01777), 0);
    expect_error_rc(text, EMM_CONFIG_CREATE_PATHS, -EPERM, 2, "state-dir", "chmod go-w");
    assert_int_equal(chmod(path, 0700), 0);
    /* a group-writable socket directory is refused; a sticky one (like /tmp) passes */
    snprintf(path, sizeof(path), "%s/hsock", tmp);
    assert_int_equal(chmod(path, 0775), 0);
    expect_error_rc(text, EMM_CONFIG_CREATE_PATHS, -EPERM, 4, "control socket", "its group");
    assert_int_equal(chmod(path, 01777), 0);
    assert_int_equal(load(text, EMM_CONFIG_CREATE_PATHS, &cfg), 0);
    emm_config_free(cfg);
    /* so is a pid file directory writable by others */
    snprintf(path, sizeof(path), "%s/hpid", tmp);
    assert_int_equal(chmod(path, 0757), 0);
    expect_error_rc(text, EMM_CONFIG_CHECK_PATHS, -EPERM, 5, "pid file", "hpid");
    assert_int_equal(chmod(path, 0755), 0);
    /* owned by another user (only testable as root) */
    if (geteuid() == 0) {
        snprintf(path, sizeof(path), "%s/hstate/deep", tmp);
        assert_int_equal(chown(path, 65534, 65534), 0);
        expect_error_rc(text, EMM_CONFIG_CREATE_PATHS, -EPERM, 2, "owned by uid 65534", "chown");
        assert_int_equal(chown(path, 0, 0), 0);
    }
}

/* ---- where the pager runs: pager = inline | process | unix:PATH, pager.user ---- */

static void
test_pager_mode(void **state)
{
    (void)state;
    struct emm_config *cfg = NULL;
    assert_int_equal(load("[fs a]\nbackend = m\n"
                          "[fs b]\nbackend = m\npager = process\npager.user = root\n"
                          "[fs c]\nbackend = m\npager = unix:/run/p.sock\n"
                          "[fs d]\nbackend = m\npager = inline\n",
                          0, &cfg),
                     0);
    assert_int_equal(cfg->fs[0].pager_mode, EMM_PAGER_INLINE);
    assert_int_equal(cfg->fs[1].pager_mode, EMM_PAGER_PROCESS);
    assert_string_equal(cfg->fs[1].pager_user, "root");
    assert_int_equal(cfg->fs[1].pager_uid, 0);
    assert_int_equal(cfg->fs[2].pager_mode, EMM_PAGER_UNIX);
    assert_string_equal(cfg->fs[2].pager_socket, "/run/p.sock");
    assert_null(cfg->fs[2].pager_user);
    assert_int_equal(cfg->fs[3].pager_mode, EMM_PAGER_INLINE);
    emm_config_free(cfg);

    expect_error("[fs a]\nbackend = m\npager = elsewhere\n", 3, "bad value 'elsewhere' for pager",
                 "inline, process, unix:/ABSOLUTE/PATH or tcp:HOST:PORT");
    /* pager = tcp: (emm-memserver) and its TLS keys */
    assert_int_equal(load("[fs a]\nbackend = m\npager = tcp:10.0.0.1:7070\n"
                          "pager.tls-psk-file = /etc/emm/psk\n"
                          "[fs b]\nbackend = m\npager = tcp:127.0.0.1:7070\npager.tls = off\n",
                          0, &cfg),
                     0);
    assert_int_equal(cfg->fs[0].pager_mode, EMM_PAGER_TCP);
    assert_string_equal(cfg->fs[0].pager_addr, "10.0.0.1:7070");
    assert_string_equal(cfg->fs[0].pager_tls_psk_file, "/etc/emm/psk");
    assert_int_equal(cfg->fs[0].pager_tls, 1);
    assert_int_equal(cfg->fs[1].pager_tls, 0);
    emm_config_free(cfg);
    expect_error("[fs a]\nbackend = m\npager = tcp:10.0.0.1:7070\n", 3,
                 "pager = tcp needs credentials", "[fs a]");
    expect_error("[fs a]\nbackend = m\npager = tcp:nowhere\n", 3, "for pager", "HOST:PORT");
    expect_error("[fs a]\nbackend = m\npager.tls-ca = /x\n", 3,
                 "pager.tls-ca needs pager = tcp:HOST:PORT", NULL);
    expect_error("[fs a]\nbackend = m\npager = unix:relative\n", 3, "for pager", NULL);
    expect_error("[fs a]\nbackend = m\npager = process\npager = inline\n", 4,
                 "duplicate key 'pager'", NULL);
    expect_error("[fs a]\nbackend = m\npager = process\npager.user = emm-no-such-user\n", 4,
                 "unknown user 'emm-no-such-user' for pager.user", NULL);
    expect_error("[fs a]\nbackend = m\npager.user = root\npager = unix:/x\n", 3,
                 "pager.user needs pager = process", "[fs a]");
    expect_error("[fs a]\nbackend = m\npager.user = root\n", 3, "pager.user needs", NULL);
    expect_error("[default-pager]\nswap = /tmp/s 1M\n[fs a]\nbackend = none\npager = process\n", 5,
                 "backend = none", "no pager");
    expect_error("[fs a]\nbackend = m\npager.usr = x\n", 3, "unknown key 'pager.usr'", NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),   cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_default_pager),
        cmocka_unit_test(test_check_paths_ok), cmocka_unit_test(test_err_default_pager),
        cmocka_unit_test(test_err_open),     cmocka_unit_test(test_err_sections),
        cmocka_unit_test(test_err_keys),     cmocka_unit_test(test_err_values),
        cmocka_unit_test(test_err_fs),       cmocka_unit_test(test_err_first_wins),
        cmocka_unit_test(test_err_long_line), cmocka_unit_test(test_err_paths),
        cmocka_unit_test(test_hardening),
        cmocka_unit_test(test_pager_mode),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
