/*
 * test_stream_tls.c - TLS 1.3 under the stream transport (emm/ipc/stream_tls.c)
 * over a socketpair: a PSK session carries data both ways and names the
 * identity; a wrong key, an unknown identity and a certificate from outside
 * the CA are refused on both sides; X.509 with the test CA
 * (tests/unit/tls/, test-only keys) works; a PSK file with a bad line is
 * refused naming FILE:LINE; a stream (port_stream.c) opens over two TLS ios
 * and exchanges hellos. Threads: the server side of each handshake runs on a
 * thread of its own.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "port_stream.h"
#include "stream_tls.h"

#define TLSDIR EMM_TEST_DATA "/tls"

static char dir[64];

static void
put(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *
path(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/emm-tls.XXXXXX");
    assert_non_null(mkdtemp(dir));
    put("server.psk", "# two hosts\nhost-a:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
                      "\nhost-b:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n");
    put("a.psk", "host-a:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    put("wrong.psk", "host-a:10112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    put("who.psk", "host-z:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    put("bad.psk", "host-a:0011\n");
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct side {
    struct emm_tls *tls;
    int fd, rc;
    struct emm_stream_io *io;
    const char *who;
    char why[256];
};

static void *
server_main(void *arg)
{
    struct side *s = arg;
    s->rc = emm_tls_session(s->tls, s->fd, 5000, &s->io, &s->who, s->why, sizeof(s->why));
    return NULL;
}

/* A handshake between server params sp and client params cp. */
static void
pair(const struct emm_tls_params *sp, const struct emm_tls_params *cp, struct side *srv,
     struct side *cli)
{
    char err[256];
    int sv[2];
    memset(srv, 0, sizeof(*srv));
    memset(cli, 0, sizeof(*cli));
    assert_int_equal(emm_tls_create(sp, 1, &srv->tls, err, sizeof(err)), 0);
    assert_int_equal(emm_tls_create(cp, 0, &cli->tls, err, sizeof(err)), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    srv->fd = sv[0];
    cli->fd = sv[1];
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, server_main, srv), 0);
    cli->rc = emm_tls_session(cli->tls, cli->fd, 5000, &cli->io, &cli->who, cli->why,
                              sizeof(cli->why));
    if (cli->rc < 0)
        shutdown(srv->fd, SHUT_RDWR); /* the client closed its end: the server sees it */
    pthread_join(t, NULL);
}

static void
unpair(struct side *srv, struct side *cli)
{
    if (srv->rc == 0)
        srv->io->close(srv->io->ctx);
    if (cli->rc == 0)
        cli->io->close(cli->io->ctx);
    emm_tls_free(srv->tls);
    emm_tls_free(cli->tls);
}

static void
psk_carries_data_both_ways(void **state)
{
    (void)state;
    struct emm_tls_params sp = {.psk_file = path("server.psk")}, cp = {.psk_file = path("a.psk")};
    struct side srv, cli;
    pair(&sp, &cp, &srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    assert_string_equal(srv.who, "psk identity host-a");
    char one[] = "hello ", two[] = "over TLS";
    struct iovec iov[2] = {{one, 6}, {two, 8}};
    assert_int_equal(cli.io->writev(cli.io->ctx, iov, 2), 14);
    char buf[32] = "";
    size_t got = 0;
    while (got < 14) {
        ssize_t r = srv.io->read(srv.io->ctx, buf + got, sizeof(buf) - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(buf, "hello over TLS", 14);
    struct iovec back = {buf, 14};
    assert_int_equal(srv.io->writev(srv.io->ctx, &back, 1), 14);
    assert_int_equal(cli.io->wait_readable(cli.io->ctx, 5000), 1);
    char in[32];
    assert_true(cli.io->read(cli.io->ctx, in, sizeof(in)) > 0);
    /* A shut down session reads the end of the stream. */
    srv.io->shutdown(srv.io->ctx);
    assert_true(cli.io->read(cli.io->ctx, in, sizeof(in)) <= 0);
    unpair(&srv, &cli);
}

static void
psk_wrong_key_is_refused(void **state)
{
    (void)state;
    struct emm_tls_params sp = {.psk_file = path("server.psk")},
                          cp = {.psk_file = path("wrong.psk")};
    struct side srv, cli;
    pair(&sp, &cp, &srv, &cli);
    assert_true(srv.rc < 0);
    assert_true(cli.rc < 0);
    assert_true(srv.why[0] != '\0');
    unpair(&srv, &cli);
}

static void
psk_unknown_identity_is_refused(void **state)
{
    (void)state;
    struct emm_tls_params sp = {.psk_file = path("server.psk")},
                          cp = {.psk_file = path("who.psk")};
    struct side srv, cli;
    pair(&sp, &cp, &srv, &cli);
    assert_true(srv.rc < 0);
    assert_true(cli.rc < 0);
    unpair(&srv, &cli);
}

static void
x509_with_the_ca(void **state)
{
    (void)state;
    struct emm_tls_params sp = {.ca_file = TLSDIR "/ca.pem", .cert_file = TLSDIR "/server.pem",
                                .key_file = TLSDIR "/server.key"},
                          cp = {.ca_file = TLSDIR "/ca.pem", .cert_file = TLSDIR "/host.pem",
                                .key_file = TLSDIR "/host.key"};
    struct side srv, cli;
    pair(&sp, &cp, &srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    assert_non_null(strstr(srv.who, "CN=emm test host"));
    unpair(&srv, &cli);
}

static void
x509_outside_the_ca_is_refused(void **state)
{
    (void)state;
    struct emm_tls_params sp = {.ca_file = TLSDIR "/ca.pem", .cert_file = TLSDIR "/server.pem",
                                .key_file = TLSDIR "/server.key"},
                          cp = {.ca_file = TLSDIR "/ca.pem", .cert_file = TLSDIR "/rogue.pem",
                                .key_file = TLSDIR "/rogue.key"};
    struct side srv, cli;
    pair(&sp, &cp, &srv, &cli);
    assert_true(srv.rc < 0);
    unpair(&srv, &cli);
    /* and a host does not take a server outside its CA */
    struct emm_tls_params sp2 = {.ca_file = TLSDIR "/ca.pem", .cert_file = TLSDIR "/rogue.pem",
                                 .key_file = TLSDIR "/rogue.key"},
                          cp2 = {.ca_file = TLSDIR "/ca.pem", .cert_file = TLSDIR "/host.pem",
                                 .key_file = TLSDIR "/host.key"};
    pair(&sp2, &cp2, &srv, &cli);
    assert_true(cli.rc < 0);
    unpair(&srv, &cli);
}

static void
bad_credentials_name_the_place(void **state)
{
    (void)state;
    char err[256] = "";
    struct emm_tls *t = NULL;
    struct emm_tls_params p = {.psk_file = path("bad.psk")};
    assert_int_equal(emm_tls_create(&p, 1, &t, err, sizeof(err)), -EINVAL);
    char want[160];
    snprintf(want, sizeof(want), "%s:1:", path("bad.psk"));
    assert_non_null(strstr(err, want));
    struct emm_tls_params none = {0};
    assert_int_equal(emm_tls_create(&none, 1, &t, err, sizeof(err)), -EINVAL);
    struct emm_tls_params half = {.ca_file = TLSDIR "/ca.pem"};
    assert_int_equal(emm_tls_create(&half, 0, &t, err, sizeof(err)), -EINVAL);
    struct emm_tls_params missing = {.psk_file = path("no-such.psk")};
    assert_int_equal(emm_tls_create(&missing, 0, &t, err, sizeof(err)), -ENOENT);
}

struct opener {
    int fd;
    struct emm_stream_io *io;
    enum emm_stream_role role;
    struct emm_stream *s;
    int rc;
};

static void *
open_main(void *arg)
{
    struct opener *o = arg;
    struct emm_stream_args a = {.label = "tls peer", .peer_role = o->role, .peer_uid = (uid_t)-1,
                                .io = o->io, .hello_timeout_ms = 5000};
    o->rc = emm_stream_open(o->fd, &a, &o->s);
    return NULL;
}

static void
stream_opens_over_tls(void **state)
{
    (void)state;
    struct emm_tls_params sp = {.psk_file = path("server.psk")}, cp = {.psk_file = path("a.psk")};
    struct side srv, cli;
    pair(&sp, &cp, &srv, &cli);
    assert_int_equal(srv.rc, 0);
    assert_int_equal(cli.rc, 0);
    struct opener so = {srv.fd, srv.io, EMM_STREAM_PEER_KERNEL, NULL, -1},
                  co = {cli.fd, cli.io, EMM_STREAM_PEER_PAGER, NULL, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, open_main, &so), 0);
    open_main(&co);
    pthread_join(t, NULL);
    assert_int_equal(so.rc, 0);
    assert_int_equal(co.rc, 0);
    struct emm_stream_info si;
    emm_stream_info(co.s, &si);
    assert_int_equal(si.version, 1);
    assert_int_equal(si.dead, 0);
    /* A lookup the server side cannot answer comes back as an errno, over TLS. */
    struct emm_port *p = NULL;
    assert_int_equal(emm_stream_lookup(co.s, 7, 5000, &p), -EOPNOTSUPP);
    emm_stream_close(co.s); /* closes the io */
    emm_stream_close(so.s);
    emm_tls_free(srv.tls);
    emm_tls_free(cli.tls);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(psk_carries_data_both_ways),
        cmocka_unit_test(psk_wrong_key_is_refused),
        cmocka_unit_test(psk_unknown_identity_is_refused),
        cmocka_unit_test(x509_with_the_ca),
        cmocka_unit_test(x509_outside_the_ca_is_refused),
        cmocka_unit_test(bad_credentials_name_the_place),
        cmocka_unit_test(stream_opens_over_tls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
