/*
 * test_ctl.c - the control socket: wire encode/decode edge cases, and a real
 * ctl_server (the emmd-ctl library, services/emmd/ctl_server.c) on a socket in a
 * mkdtemp directory driven by ctl_request and by raw, misbehaving clients.
 * The command handler runs on the server's worker threads and touches only
 * atomics, so the test needs no locking.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_client.h"
#include "ctl_wire.h"

#include "ctl_server.h"

struct fixture {
    char dir[64];
    char path[128];
    struct ctl_server *srv;
};

static atomic_int handler_calls;
static atomic_int slow_running, slow_release;

static int
handler(void *ctx, int argc, char **argv, FILE *out)
{
    int i;

    (void)ctx;
    atomic_fetch_add(&handler_calls, 1);
    if (strcmp(argv[0], "ping") == 0) {
        fputs("pong\n", out);
        return 0;
    }
    if (strcmp(argv[0], "echo") == 0) {
        for (i = 1; i < argc; i++)
            fprintf(out, "%s%s", i > 1 ? " " : "", argv[i]);
        fputc('\n', out);
        return 0;
    }
    if (strcmp(argv[0], "info") == 0) {
        fputs("# Server\nversion:test\n", out);
        return 0;
    }
    if (strcmp(argv[0], "big") == 0) {
        for (i = 0; i < 100000; i++)
            fprintf(out, "line %06d\n", i);
        return 0;
    }
    if (strcmp(argv[0], "fail") == 0) {
        fputs("bad thing\x01 happened\nsecond line\n", out);
        return -EINVAL;
    }
    if (strcmp(argv[0], "quietfail") == 0)
        return -ENOENT;
    if (strcmp(argv[0], "argv") == 0) { /* each word, quoted for people */
        for (i = 1; i < argc; i++) {
            char q[1024];
            ctl_wire_quote(argv[i], q, sizeof q, CTL_QUOTE_UTF8);
            fprintf(out, "%s\n", q);
        }
        return 0;
    }
    if (strcmp(argv[0], "slow") == 0) { /* like flush: blocks until released (or 20 s) */
        atomic_store(&slow_running, 1);
        for (i = 0; i < 2000 && !atomic_load(&slow_release); i++)
            usleep(10000);
        atomic_store(&slow_running, 0);
        fputs("slow done\n", out);
        return 0;
    }
    fprintf(out, "unknown command %s\n", argv[0]);
    return -EINVAL;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);

    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_ctl.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/emmd.sock", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    ctl_server_stop(f->srv);
    unlink(f->path);
    assert_int_equal(rmdir(f->dir), 0); /* nothing left behind */
    free(f);
    return 0;
}

static void
start(struct fixture *f)
{
    assert_int_equal(ctl_server_start(f->path, handler, NULL, &f->srv), 0);
    assert_non_null(f->srv);
}

static int
raw_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    strcpy(sa.sun_path, path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Reads to EOF (or ECONNRESET after data, see ctl_client.c) into buf. */
static size_t
raw_read(int fd, char *buf, size_t cap)
{
    size_t len = 0;

    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n == 0 || (errno == ECONNRESET && len > 0));
        break;
    }
    buf[len] = '\0';
    return len;
}

static void
raw_exchange(const char *path, const char *req, size_t len, char *reply, size_t cap)
{
    int fd = raw_connect(path);

    assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    raw_read(fd, reply, cap);
    close(fd);
}

/* ---- wire ---------------------------------------------------------------- */

static int
decode_str(const char *s, size_t len, char *argv[], int *argc, char *err)
{
    static char buf[2 * CTL_WIRE_MAX_LINE];

    assert_true(len <= sizeof buf);
    memcpy(buf, s, len);
    return ctl_wire_decode(buf, len, argv, argc, err, CTL_WIRE_MAX_REASON);
}

static void
test_wire_decode_ok(void **state)
{
    char *argv[CTL_WIRE_MAX_ARGS + 1], err[CTL_WIRE_MAX_REASON];
    int argc;

    (void)state;
    assert_int_equal(decode_str("ping\n", 5, argv, &argc, err), 0);
    assert_int_equal(argc, 1);
    assert_string_equal(argv[0], "ping");
    assert_null(argv[1]);

    assert_int_equal(decode_str("info memory x=1\n", 16, argv, &argc, err), 0);
    assert_int_equal(argc, 3);
    assert_string_equal(argv[0], "info");
    assert_string_equal(argv[1], "memory");
    assert_string_equal(argv[2], "x=1");
    assert_null(argv[3]);
}

static void
test_wire_decode_bad(void **state)
{
    static const struct {
        const char *in;
        int rc;
        const char *why;
    } cases[] = {
        {"", -EINVAL, "empty request"},
        {"\n", -EINVAL, "empty request"},
        {"ping", -EINVAL, "not terminated"},
        {" ping\n", -EINVAL, "empty word at offset 0"},
        {"a  b\n", -EINVAL, "empty word at offset 2"},
        {"a b \n", -EINVAL, "trailing space"},
        {"a\tb\n", -EINVAL, "non-printable byte 0x09 at offset 1"},
        {"a\rb\n", -EINVAL, "non-printable byte 0x0d"},
        {"ping\r\n", -EINVAL, "non-printable byte 0x0d at offset 4"},
        {"a\x7f\n", -EINVAL, "non-printable byte 0x7f"},
        {"\xc3\xa9\n", -EINVAL, "non-printable byte 0xc3 at offset 0"},
        {"ping\nx", -EINVAL, "1 bytes after the request line"},
        {"ping\n\n", -EINVAL, "after the request line"},
    };
    char *argv[CTL_WIRE_MAX_ARGS + 1], err[CTL_WIRE_MAX_REASON];
    size_t i;
    int argc;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = decode_str(cases[i].in, strlen(cases[i].in), argv, &argc, err);
        if (rc != cases[i].rc || !strstr(err, cases[i].why))
            fail_msg("case %zu: rc %d err \"%s\", want %d \"%s\"", i, rc, err, cases[i].rc,
                     cases[i].why);
        assert_int_equal(argc, 0);
    }
    /* NUL inside the line */
    assert_int_equal(decode_str("a\0b\n", 4, argv, &argc, err), -EINVAL);
    assert_non_null(strstr(err, "0x00 at offset 1"));
    /* err may be NULL */
    {
        char b[] = "\n";
        assert_int_equal(ctl_wire_decode(b, 1, argv, &argc, NULL, 0), -EINVAL);
    }
}

static void
test_wire_decode_limits(void **state)
{
    char *argv[CTL_WIRE_MAX_ARGS + 1], err[CTL_WIRE_MAX_REASON];
    char line[2 * CTL_WIRE_MAX_LINE];
    size_t i;
    int argc;

    (void)state;
    /* exactly the limit, '\n' included */
    memset(line, 'a', CTL_WIRE_MAX_LINE - 1);
    line[CTL_WIRE_MAX_LINE - 1] = '\n';
    assert_int_equal(decode_str(line, CTL_WIRE_MAX_LINE, argv, &argc, err), 0);
    assert_int_equal(argc, 1);
    assert_int_equal(strlen(argv[0]), CTL_WIRE_MAX_LINE - 1);
    /* one byte over, with or without a newline after it */
    memset(line, 'a', CTL_WIRE_MAX_LINE);
    line[CTL_WIRE_MAX_LINE] = '\n';
    assert_int_equal(decode_str(line, CTL_WIRE_MAX_LINE + 1, argv, &argc, err), -EMSGSIZE);
    assert_non_null(strstr(err, "too long"));
    assert_int_equal(decode_str(line, CTL_WIRE_MAX_LINE + 1 - 1, argv, &argc, err), -EINVAL);
    assert_non_null(strstr(err, "not terminated"));
    memset(line, 'a', sizeof line);
    assert_int_equal(decode_str(line, sizeof line, argv, &argc, err), -EMSGSIZE);

    /* 16 words pass, 17 do not */
    for (i = 0; i < CTL_WIRE_MAX_ARGS; i++) {
        line[2 * i] = 'w';
        line[2 * i + 1] = ' ';
    }
    line[2 * CTL_WIRE_MAX_ARGS - 1] = '\n';
    assert_int_equal(decode_str(line, 2 * CTL_WIRE_MAX_ARGS, argv, &argc, err), 0);
    assert_int_equal(argc, CTL_WIRE_MAX_ARGS);
    assert_null(argv[CTL_WIRE_MAX_ARGS]);
    for (i = 0; i <= CTL_WIRE_MAX_ARGS; i++) {
        line[2 * i] = 'w';
        line[2 * i + 1] = ' ';
    }
    line[2 * CTL_WIRE_MAX_ARGS + 1] = '\n';
    assert_int_equal(decode_str(line, 2 * CTL_WIRE_MAX_ARGS + 2, argv, &argc, err), -E2BIG);
    assert_non_null(strstr(err, "too many words"));
}

static void
test_wire_encode(void **state)
{
    char buf[CTL_WIRE_MAX_LINE], err[CTL_WIRE_MAX_REASON], big[CTL_WIRE_MAX_LINE + 1];
    char *ok[] = {"info", "memory"}, *space[] = {"echo", "a b"}, *empty[] = {"echo", ""};
    char *ctrl[] = {"echo\n"}, *many[CTL_WIRE_MAX_ARGS + 1], *bigv[] = {big};
    char *argv[CTL_WIRE_MAX_ARGS + 1];
    size_t len, i;
    int argc;

    (void)state;
    assert_int_equal(ctl_wire_encode(2, ok, buf, sizeof buf, &len, err, sizeof err), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(buf, "info memory\n", 12);
    assert_int_equal(ctl_wire_decode(buf, len, argv, &argc, err, sizeof err), 0);
    assert_int_equal(argc, 2);
    assert_string_equal(argv[1], "memory");

    /* words that are not bare are quoted */
    assert_int_equal(ctl_wire_encode(2, space, buf, sizeof buf, &len, err, sizeof err), 0);
    assert_memory_equal(buf, "echo \"a b\"\n", len);
    assert_int_equal(ctl_wire_encode(2, empty, buf, sizeof buf, &len, err, sizeof err), 0);
    assert_memory_equal(buf, "echo \"\"\n", len);
    assert_int_equal(ctl_wire_encode(1, ctrl, buf, sizeof buf, &len, err, sizeof err), 0);
    assert_memory_equal(buf, "\"echo\\n\"\n", len);
    assert_int_equal(ctl_wire_encode(1, empty + 1, buf, sizeof buf, &len, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "empty verb"));
    assert_int_equal(ctl_wire_encode(0, ok, buf, sizeof buf, &len, err, sizeof err), -EINVAL);
    for (i = 0; i <= CTL_WIRE_MAX_ARGS; i++)
        many[i] = "w";
    assert_int_equal(
        ctl_wire_encode(CTL_WIRE_MAX_ARGS + 1, many, buf, sizeof buf, &len, err, sizeof err),
        -E2BIG);
    assert_int_equal(
        ctl_wire_encode(CTL_WIRE_MAX_ARGS, many, buf, sizeof buf, &len, err, sizeof err), 0);
    assert_int_equal(len, 2 * CTL_WIRE_MAX_ARGS);

    memset(big, 'x', CTL_WIRE_MAX_LINE - 1);
    big[CTL_WIRE_MAX_LINE - 1] = '\0';
    assert_int_equal(ctl_wire_encode(1, bigv, buf, sizeof buf, &len, err, sizeof err), 0);
    assert_int_equal(len, CTL_WIRE_MAX_LINE);
    assert_int_equal(ctl_wire_encode(1, bigv, buf, 100, &len, err, sizeof err), -EMSGSIZE);
    big[CTL_WIRE_MAX_LINE - 1] = 'x';
    big[CTL_WIRE_MAX_LINE] = '\0';
    assert_int_equal(ctl_wire_encode(1, bigv, buf, sizeof buf, &len, err, sizeof err),
                     -EMSGSIZE);
    assert_non_null(strstr(err, "too long"));
}

static void
test_wire_parse_reply(void **state)
{
    const char *body, *reason;
    size_t bl, rl;

    (void)state;
    assert_int_equal(ctl_wire_parse_reply("ok\nhello\n", 9, &body, &bl, &reason, &rl), 0);
    assert_int_equal(bl, 6);
    assert_memory_equal(body, "hello\n", 6);
    assert_null(reason);
    assert_int_equal(ctl_wire_parse_reply("ok\n", 3, &body, &bl, &reason, &rl), 0);
    assert_int_equal(bl, 0);
    assert_int_equal(ctl_wire_parse_reply("error: no such thing\n", 21, &body, &bl, &reason, &rl),
                     -EREMOTEIO);
    assert_int_equal(rl, 13);
    assert_memory_equal(reason, "no such thing", 13);
    assert_null(body);
    assert_int_equal(ctl_wire_parse_reply("error: cut", 10, &body, &bl, &reason, &rl), -EPROTO);
    assert_int_equal(ctl_wire_parse_reply("ok", 2, &body, &bl, &reason, &rl), -EPROTO);
    assert_int_equal(ctl_wire_parse_reply("", 0, &body, &bl, &reason, &rl), -EPROTO);
    assert_int_equal(ctl_wire_parse_reply("okay\n", 5, &body, &bl, &reason, &rl), -EPROTO);
}


/* ---- quoting ------------------------------------------------------------- */

static const char *const odd_names[] = {
    "plain", "a b", "tab\there", "new\nline", "quote\"x", "back\\slash", "caf\xc3\xa9 \xe2\x82\xac",
    "ctl\x01", "\xff\xfe bad utf8", "\"", "\\", " ", "x\r\n", "\x7f", "",
};

static void
test_wire_quote_round_trip(void **state)
{
    char buf[CTL_WIRE_MAX_LINE], err[CTL_WIRE_MAX_REASON];
    char *argv[CTL_WIRE_MAX_ARGS + 1], *words[CTL_WIRE_MAX_ARGS];
    size_t len, i, n = sizeof odd_names / sizeof odd_names[0];
    int argc;

    (void)state;
    assert_true(n < CTL_WIRE_MAX_ARGS);
    words[0] = "verb";
    for (i = 0; i < n; i++)
        words[i + 1] = (char *)odd_names[i];
    assert_int_equal(ctl_wire_encode((int)n + 1, words, buf, sizeof buf, &len, err, sizeof err),
                     0);
    /* the line is printable ASCII, one line */
    for (i = 0; i + 1 < len; i++)
        assert_true(buf[i] >= 0x20 && buf[i] <= 0x7e);
    assert_int_equal(buf[len - 1], '\n');
    assert_int_equal(ctl_wire_decode(buf, len, argv, &argc, err, sizeof err), 0);
    assert_int_equal(argc, (int)n + 1);
    for (i = 0; i < n; i++)
        assert_string_equal(argv[i + 1], odd_names[i]);
    assert_null(argv[n + 1]);
}

static void
test_wire_decode_quoted(void **state)
{
    char *argv[CTL_WIRE_MAX_ARGS + 1], err[CTL_WIRE_MAX_REASON];
    int argc;

    (void)state;
    assert_int_equal(decode_str("flush fs \"a b\"\n", 15, argv, &argc, err), 0);
    assert_int_equal(argc, 3);
    assert_string_equal(argv[2], "a b");
    assert_int_equal(decode_str("\"x\\x41\\x0a\\t\\\\\\\"\" \"\"\n", 21, argv, &argc, err), 0);
    assert_int_equal(argc, 2);
    assert_string_equal(argv[0], "xA\n\t\\\"");
    assert_string_equal(argv[1], "");
    assert_int_equal(decode_str("\"\\xC3\\xA9\"\n", 11, argv, &argc, err), 0);
    assert_string_equal(argv[0], "\xc3\xa9");
}

static void
test_wire_decode_quoted_bad(void **state)
{
    static const struct {
        const char *in;
        const char *why;
    } cases[] = {
        {"flush fs \"a b\n", "unterminated quote opened at offset 9"},
        {"\"abc\\\"\n", "unterminated quote opened at offset 0"},
        {"\"abc\\\n", "unterminated quote"},
        {"\"a\\qb\"\n", "bad escape \\q at offset 2"},
        {"\"a\\x4\"\n", "bad escape at offset 2: \\x needs two hex digits"},
        {"\"a\\xg1\"\n", "\\x needs two hex digits"},
        {"\"a\\x00b\"\n", "\\x00 (a word cannot hold NUL)"},
        {"\"ab\"c\n", "byte 0x63 after the closing quote at offset 4"},
        {"a\"b\"\n", "'\"' at offset 1 inside a bare word"},
        {"a\\nb\n", "'\\' at offset 1 inside a bare word"},
        {"x \"a\"  y\n", "empty word at offset 6"},
        {"x \"a\" \n", "trailing space at offset 5"},
    };
    char *argv[CTL_WIRE_MAX_ARGS + 1], err[CTL_WIRE_MAX_REASON];
    size_t i;
    int argc;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = decode_str(cases[i].in, strlen(cases[i].in), argv, &argc, err);
        if (rc != -EINVAL || !strstr(err, cases[i].why))
            fail_msg("case %zu: rc %d err \"%s\", want %d \"%s\"", i, rc, err, -EINVAL,
                     cases[i].why);
        assert_int_equal(argc, 0);
    }
    /* a raw NUL inside a quoted word is a non-printable byte */
    assert_int_equal(decode_str("\"a\0b\"\n", 6, argv, &argc, err), -EINVAL);
    assert_non_null(strstr(err, "0x00 at offset 2"));
}

static void
test_wire_quote_human(void **state)
{
    static const struct {
        const char *in;
        unsigned flags;
        const char *out;
    } cases[] = {
        {"plain-name.1", CTL_QUOTE_UTF8, "plain-name.1"},
        {"a b", CTL_QUOTE_UTF8, "\"a b\""},
        {"tab\there", CTL_QUOTE_UTF8, "\"tab\\there\""},
        {"new\nline", CTL_QUOTE_UTF8, "\"new\\nline\""},
        {"quote\"x", CTL_QUOTE_UTF8, "\"quote\\\"x\""},
        {"back\\slash", CTL_QUOTE_UTF8, "\"back\\\\slash\""},
        {"caf\xc3\xa9", CTL_QUOTE_UTF8, "caf\xc3\xa9"},
        {"caf\xc3\xa9", 0, "\"caf\\xc3\\xa9\""},
        {"c1\xc2\x85", CTL_QUOTE_UTF8, "\"c1\\xc2\\x85\""},
        {"bad\xc3", CTL_QUOTE_UTF8, "\"bad\\xc3\""},
        {"\xed\xa0\x80", CTL_QUOTE_UTF8, "\"\\xed\\xa0\\x80\""}, /* a surrogate */
        {"\xc0\xaf", CTL_QUOTE_UTF8, "\"\\xc0\\xaf\""},          /* overlong '/' */
        {"ctl\x01", CTL_QUOTE_UTF8, "\"ctl\\x01\""},
        {"", CTL_QUOTE_UTF8, "\"\""},
        {"/a b/c,d\"e\\f\ng", CTL_QUOTE_UTF8 | CTL_QUOTE_BARE, "/a b/c,d\"e\\\\f\\ng"},
        {"", CTL_QUOTE_BARE, ""},
    };
    char buf[64];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = ctl_wire_quote(cases[i].in, buf, sizeof buf, cases[i].flags);
        if (strcmp(buf, cases[i].out) != 0 || n != strlen(cases[i].out))
            fail_msg("case %zu: got \"%s\" (%zu), want \"%s\"", i, buf, n, cases[i].out);
    }
    /* like snprintf: truncated, NUL-terminated, full length returned */
    assert_int_equal(ctl_wire_quote("a b", buf, 3, 0), 5);
    assert_string_equal(buf, "\"a");
    assert_int_equal(ctl_wire_quote("a b", NULL, 0, 0), 5);
}

static void
test_wire_json_str(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "\"plain\""},
        {"a \"b\" \\ /", "\"a \\\"b\\\" \\\\ /\""},
        {"new\nline\ttab\r\b\f", "\"new\\nline\\ttab\\r\\b\\f\""},
        {"ctl\x01\x7f", "\"ctl\\u0001\\u007f\""},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
        {"bad\xff\xc3", "\"bad\\udcff\\udcc3\""},
        {"", "\"\""},
    };
    char buf[64];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = ctl_wire_json_str(cases[i].in, buf, sizeof buf);
        if (strcmp(buf, cases[i].out) != 0 || n != strlen(cases[i].out))
            fail_msg("case %zu: got \"%s\" (%zu), want \"%s\"", i, buf, n, cases[i].out);
    }
}

/* ---- server -------------------------------------------------------------- */

static void
test_round_trip(void **state)
{
    struct fixture *f = *state;
    char *ping[] = {"ping"}, *echo[] = {"echo", "a", "b-c", "x=1"}, *info[] = {"info"};
    char *big[] = {"big"};
    char *body, *err;

    start(f);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), 0);
    assert_string_equal(body, "pong\n");
    assert_null(err);
    free(body);
    assert_int_equal(ctl_request(f->path, 4, echo, &body, &err), 0);
    assert_string_equal(body, "a b-c x=1\n");
    free(body);
    assert_int_equal(ctl_request(f->path, 1, info, &body, NULL), 0);
    assert_string_equal(body, "# Server\nversion:test\n");
    free(body);
    assert_int_equal(ctl_request(f->path, 1, big, &body, NULL), 0);
    assert_int_equal(strlen(body), 100000 * 12);
    assert_memory_equal(body + 99999 * 12, "line 099999\n", 12);
    free(body);
    /* outputs are optional */
    assert_int_equal(ctl_request(f->path, 1, ping, NULL, NULL), 0);
}

static void
test_socket_mode(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    struct dirent *de;
    DIR *d;
    int n = 0;

    start(f);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    /* the temporary bind directory is gone */
    d = opendir(f->dir);
    assert_non_null(d);
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' || strncmp(de->d_name, ".ctl-", 5) == 0)
            n++;
    closedir(d);
    assert_int_equal(n, 1);
    ctl_server_stop(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void
test_error_reply(void **state)
{
    struct fixture *f = *state;
    char *fail[] = {"fail"}, *quiet[] = {"quietfail"}, *unknown[] = {"nosuch", "x"};
    char *body, *err;

    start(f);
    /* first line only, non-printable bytes masked */
    assert_int_equal(ctl_request(f->path, 1, fail, &body, &err), -EREMOTEIO);
    assert_null(body);
    assert_string_equal(err, "bad thing? happened");
    free(err);
    /* nothing written: strerror of the code */
    assert_int_equal(ctl_request(f->path, 1, quiet, &body, &err), -EREMOTEIO);
    assert_string_equal(err, strerror(ENOENT));
    free(err);
    assert_int_equal(ctl_request(f->path, 2, unknown, &body, &err), -EREMOTEIO);
    assert_string_equal(err, "unknown command nosuch");
    free(err);
}

static void
test_malformed(void **state)
{
    struct fixture *f = *state;
    char reply[1024], req[CTL_WIRE_MAX_LINE + 1000], want[128];
    int before;

    start(f);
    before = atomic_load(&handler_calls);
    raw_exchange(f->path, "pi\x01ng\n", 6, reply, sizeof reply);
    assert_string_equal(reply, "error: non-printable byte 0x01 at offset 2\n");
    raw_exchange(f->path, "ping  x\n", 8, reply, sizeof reply);
    assert_non_null(strstr(reply, "error: empty word at offset 5"));
    raw_exchange(f->path, "\n", 1, reply, sizeof reply);
    assert_string_equal(reply, "error: empty request\n");
    memset(req, 'a', sizeof req);
    req[sizeof req - 1] = '\n';
    raw_exchange(f->path, req, sizeof req, reply, sizeof reply);
    snprintf(want, sizeof want, "error: request too long (limit %d bytes)\n", CTL_WIRE_MAX_LINE);
    assert_string_equal(reply, want);
    /* a request ended by shutdown instead of '\n' */
    {
        int fd = raw_connect(f->path);
        assert_int_equal(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
        shutdown(fd, SHUT_WR);
        raw_read(fd, reply, sizeof reply);
        close(fd);
        assert_string_equal(reply, "error: request not terminated by a newline\n");
    }
    /* connect and close at once: no reply, no harm */
    close(raw_connect(f->path));
    assert_int_equal(atomic_load(&handler_calls), before);
    /* still serving */
    raw_exchange(f->path, "ping\n", 5, reply, sizeof reply);
    assert_string_equal(reply, "ok\npong\n");
}

static void
test_live_path_refused(void **state)
{
    struct fixture *f = *state;
    struct ctl_server *second = NULL;
    char *ping[] = {"ping"}, *body;
    struct stat a, b;

    start(f);
    assert_int_equal(lstat(f->path, &a), 0);
    assert_int_equal(ctl_server_start(f->path, handler, NULL, &second), -EADDRINUSE);
    assert_null(second);
    assert_int_equal(lstat(f->path, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, NULL), 0);
    free(body);
}

static void
test_stale_replaced(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *ping[] = {"ping"}, *body, *err;
    struct stat st;
    int fd;

    /* a socket file nobody listens on, as a crashed daemon leaves it */
    strcpy(sa.sun_path, f->path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    close(fd);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), -ECONNREFUSED);
    assert_string_equal(err, "connect: Connection refused");
    free(err);

    start(f);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, NULL), 0);
    assert_string_equal(body, "pong\n");
    free(body);
}

static void
test_not_a_socket(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    int fd = open(f->path, O_CREAT | O_WRONLY | O_EXCL, 0644);

    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(ctl_server_start(f->path, handler, NULL, &f->srv), -EEXIST);
    assert_null(f->srv);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

static void
test_silent_client(void **state)
{
    struct fixture *f = *state;
    char *ping[] = {"ping"}, *body, *err = NULL, reply[256];
    int silent, partial;

    start(f);
    silent = raw_connect(f->path);
    partial = raw_connect(f->path);
    assert_int_equal(send(partial, "pi", 2, MSG_NOSIGNAL), 2);
    /* served after both have timed out; fails (client timeout) if they stall it */
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), 0);
    assert_string_equal(body, "pong\n");
    free(body);
    raw_read(silent, reply, sizeof reply);
    assert_string_equal(reply, "error: request not complete within 2000 ms\n");
    raw_read(partial, reply, sizeof reply);
    assert_string_equal(reply, "error: request not complete within 2000 ms\n");
    close(silent);
    close(partial);
}

static void
test_permission_denied(void **state)
{
    struct fixture *f = *state;
    pid_t pid;
    int status;

    if (geteuid() != 0)
        skip(); /* needs a second uid */
    start(f);
    /* let another uid reach the socket so that SO_PEERCRED is what refuses it */
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(f->path, 0666), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *ping[] = {"ping"}, *body = NULL, *err = NULL;
        int rc;

        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
            _exit(3);
        rc = ctl_request(f->path, 1, ping, &body, &err);
        _exit(rc == -EREMOTEIO && err && strcmp(err, "permission denied") == 0 ? 0 : 4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A server that answers before reading: the client must still show its reply. */
static void *
rude_server(void *arg)
{
    int lfd = *(int *)arg, c = accept(lfd, NULL, NULL);

    if (c >= 0) {
        if (send(c, "error: go away\n", 15, MSG_NOSIGNAL) != 15)
            abort();
        close(c);
    }
    return NULL;
}

static void
test_early_reply(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char *ping[] = {"ping"}, *body, *err;
    pthread_t t;
    int lfd, i;

    strcpy(sa.sun_path, f->path);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    for (i = 0; i < 20; i++) {
        assert_int_equal(pthread_create(&t, NULL, rude_server, &lfd), 0);
        assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), -EREMOTEIO);
        assert_string_equal(err, "go away");
        free(err);
        pthread_join(t, NULL);
    }
    close(lfd);
}

static void
test_request_errors(void **state)
{
    struct fixture *f = *state;
    char *ping[] = {"ping"}, *body, *err, *big = malloc(CTL_WIRE_MAX_LINE);
    char *bad[] = {"echo", big};
    char longpath[200];

    /* a request too long never leaves the client */
    assert_non_null(big);
    memset(big, 'x', CTL_WIRE_MAX_LINE - 1);
    big[CTL_WIRE_MAX_LINE - 1] = '\0';
    assert_int_equal(ctl_request(f->path, 2, bad, &body, &err), -EMSGSIZE);
    assert_non_null(strstr(err, "request: request too long"));
    free(err);
    free(big);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), -ENOENT);
    assert_string_equal(err, "connect: No such file or directory");
    free(err);
    memset(longpath, 'p', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(ctl_request(longpath, 1, ping, &body, &err), -ENAMETOOLONG);
    free(err);
    assert_int_equal(ctl_server_start(longpath, handler, NULL, &f->srv), -ENAMETOOLONG);
}


/* Names with spaces, newlines, quotes and any byte reach the handler intact. */
static void
test_quoted_round_trip(void **state)
{
    struct fixture *f = *state;
    char *argv[CTL_WIRE_MAX_ARGS], *body, want[2048] = "", q[256];
    size_t i, n = sizeof odd_names / sizeof odd_names[0];

    start(f);
    argv[0] = "argv";
    for (i = 0; i < n; i++) {
        argv[i + 1] = (char *)odd_names[i];
        ctl_wire_quote(odd_names[i], q, sizeof q, CTL_QUOTE_UTF8);
        strcat(want, q);
        strcat(want, "\n");
    }
    assert_int_equal(ctl_request(f->path, (int)n + 1, argv, &body, NULL), 0);
    assert_string_equal(body, want);
    free(body);
}

/* Many silent clients at once: a ping is served while they wait, and each of
 * them gets the timeout error and EOF once its own deadline passes. The old
 * one-at-a-time server made the ping wait 2 s per silent client (100 s: past
 * the client's 30 s limit). */
static void
test_many_silent_clients(void **state)
{
    struct fixture *f = *state;
    char *ping[] = {"ping"}, *body, *err = NULL, reply[256];
    int fds[50], i;

    start(f);
    for (i = 0; i < 50; i++) {
        fds[i] = raw_connect(f->path);
        if (i % 2)
            assert_int_equal(send(fds[i], "pi", 2, MSG_NOSIGNAL), 2);
    }
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), 0);
    assert_string_equal(body, "pong\n");
    free(body);
    for (i = 0; i < 50; i++) {
        raw_read(fds[i], reply, sizeof reply);
        assert_string_equal(reply, "error: request not complete within 2000 ms\n");
        close(fds[i]);
    }
}

/* Past CTL_SERVER_MAX_CLIENTS a connection is refused with a reason; once the
 * holders are gone the server serves again. */
static void
test_client_cap(void **state)
{
    struct fixture *f = *state;
    char *ping[] = {"ping"}, *body, *err = NULL, reply[256], want[128];
    int fds[CTL_SERVER_MAX_CLIENTS], i, extra;

    start(f);
    for (i = 0; i < CTL_SERVER_MAX_CLIENTS; i++)
        fds[i] = raw_connect(f->path);
    extra = raw_connect(f->path);
    raw_read(extra, reply, sizeof reply);
    close(extra);
    snprintf(want, sizeof want, "error: too many clients (limit %d); try again\n",
             CTL_SERVER_MAX_CLIENTS);
    assert_string_equal(reply, want);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), -EREMOTEIO);
    assert_non_null(strstr(err, "too many clients"));
    free(err);
    /* the holders time out (the server closes them), then a ping is served */
    for (i = 0; i < CTL_SERVER_MAX_CLIENTS; i++) {
        raw_read(fds[i], reply, sizeof reply);
        assert_string_equal(reply, "error: request not complete within 2000 ms\n");
        close(fds[i]);
    }
    assert_int_equal(ctl_request(f->path, 1, ping, &body, &err), 0);
    assert_string_equal(body, "pong\n");
    free(body);
}

/* A request far over the limit is refused without reading it all, and the
 * server goes on serving. */
static void
test_huge_request(void **state)
{
    struct fixture *f = *state;
    size_t total = 4u << 20, sent = 0;
    char *big = malloc(total), reply[256], want[128], *ping[] = {"ping"}, *body;
    int fd;

    assert_non_null(big);
    memset(big, 'a', total);
    start(f);
    fd = raw_connect(f->path);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    while (sent < total) {
        ssize_t n = send(fd, big + sent, total - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            usleep(1000);
            continue;
        }
        assert_true(errno == EPIPE || errno == ECONNRESET); /* refused mid-way */
        break;
    }
    assert_true(sent < total);
    assert_int_equal(fcntl(fd, F_SETFL, 0), 0);
    raw_read(fd, reply, sizeof reply);
    close(fd);
    snprintf(want, sizeof want, "error: request too long (limit %d bytes)\n", CTL_WIRE_MAX_LINE);
    assert_string_equal(reply, want);
    free(big);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, NULL), 0);
    assert_string_equal(body, "pong\n");
    free(body);
}

static void *
slow_client(void *arg)
{
    struct fixture *f = arg;
    char *slow[] = {"slow"}, *body = NULL;
    int rc = ctl_request(f->path, 1, slow, &body, NULL);

    if (rc != 0 || strcmp(body, "slow done\n") != 0)
        abort();
    free(body);
    return NULL;
}

/* A command that blocks (like flush waiting on the kernel) does not hold up
 * the others: ping is answered while it still runs. */
static void
test_slow_command(void **state)
{
    struct fixture *f = *state;
    char *ping[] = {"ping"}, *body;
    pthread_t t;
    int i;

    start(f);
    atomic_store(&slow_release, 0);
    assert_int_equal(pthread_create(&t, NULL, slow_client, f), 0);
    for (i = 0; i < 2000 && !atomic_load(&slow_running); i++)
        usleep(10000);
    assert_int_equal(atomic_load(&slow_running), 1);
    assert_int_equal(ctl_request(f->path, 1, ping, &body, NULL), 0);
    assert_string_equal(body, "pong\n");
    free(body);
    assert_int_equal(atomic_load(&slow_running), 1); /* served meanwhile */
    atomic_store(&slow_release, 1);
    pthread_join(t, NULL);
}

/* Stopping with clients connected, one in a command: every client sees EOF,
 * the running command finishes first, nothing leaks (run under ASan). */
static void
test_stop_with_clients(void **state)
{
    struct fixture *f = *state;
    char reply[256];
    int fds[10], i, fd;

    start(f);
    atomic_store(&slow_release, 0);
    atomic_store(&slow_running, 0);
    fd = raw_connect(f->path);
    assert_int_equal(send(fd, "slow\n", 5, MSG_NOSIGNAL), 5);
    for (i = 0; i < 10; i++)
        fds[i] = raw_connect(f->path);
    assert_int_equal(send(fds[0], "pi", 2, MSG_NOSIGNAL), 2);
    for (i = 0; i < 2000 && !atomic_load(&slow_running); i++)
        usleep(10000);
    assert_int_equal(atomic_load(&slow_running), 1);
    atomic_store(&slow_release, 1);
    ctl_server_stop(f->srv);
    f->srv = NULL;
    for (i = 0; i < 10; i++) {
        assert_int_equal(raw_read(fds[i], reply, sizeof reply), 0);
        close(fds[i]);
    }
    raw_read(fd, reply, sizeof reply); /* stopped: no reply, or the whole reply */
    assert_true(reply[0] == '\0' || strcmp(reply, "ok\nslow done\n") == 0);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_decode_ok),
        cmocka_unit_test(test_wire_decode_bad),
        cmocka_unit_test(test_wire_decode_limits),
        cmocka_unit_test(test_wire_encode),
        cmocka_unit_test(test_wire_parse_reply),
        cmocka_unit_test(test_wire_quote_round_trip),
        cmocka_unit_test(test_wire_decode_quoted),
        cmocka_unit_test(test_wire_decode_quoted_bad),
        cmocka_unit_test(test_wire_quote_human),
        cmocka_unit_test(test_wire_json_str),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_path_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoted_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_silent_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_clients, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
