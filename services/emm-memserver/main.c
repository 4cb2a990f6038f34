/*
 * emm-memserver - the network memory server: the pager for objects that
 * several emmd hosts map at once (pager = tcp:HOST:PORT), over a backend
 * stack of its own, keeping the hosts' copies coherent per page (many
 * readers or one writer, as NetMemServer; coherence.c).
 *
 *   emm-memserver -c memserver.conf [-n] [-v]
 *
 * The main thread runs a libuv loop: the listening socket (each connection
 * is handed to host.c, which authenticates it on a thread of its own), the
 * signals, and the closing of dead hosts. Hosts' messages are handled on
 * their streams' reader threads (object.c).
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a configuration or start
 * failure, 2 on a usage error (as emmd).
 *
 * Locking: main's state is the loop's; the server's is memserver.h's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "backend_host.h"
#include "msrv_config.h"
#include "locks.h"
#include "log.h"
#include "memserver.h"
#include "stream_tcp.h"
#include "stream_tls.h"

static uv_async_t reap_async;

static void
usage(FILE *f)
{
    fprintf(f, "usage: emm-memserver -c CONFIG [-n] [-v]\n"
               "\n"
               "The network memory server: the pager for objects shared by several emmd\n"
               "hosts (pager = tcp:HOST:PORT), kept coherent page by page\n"
               "(emm-memserver(8), docs/memserver.md).\n"
               "  -c, --config=CONFIG  configuration file (memserver.conf)\n"
               "  -n, --check          check the configuration and the credentials; exit\n"
               "  -v, --verbose        debug logging\n"
               "  -h, --help           this text\n"
               "  -V, --version        print the version\n"
               "\n"
               "Signals: SIGTERM, SIGINT stop (hosts are cut, the backend synced).\n"
               "Exit status: 0 ok, 1 failure (configuration, start, runtime), 2 usage error.\n");
}

static int
usage_error(const char *what)
{
    if (what != NULL)
        fprintf(stderr, "emm-memserver: %s\n", what);
    fprintf(stderr, "Try 'emm-memserver --help' for more information.\n");
    return 2;
}

static void
host_dead(struct msrv *srv)
{
    (void)srv;
    uv_async_send(&reap_async);
}

static void
on_reap(uv_async_t *a)
{
    msrv_hosts_reap(a->data);
}

static void
on_listen(uv_poll_t *p, int status, int events)
{
    struct msrv *srv = p->data;
    int lfd;
    (void)events;
    if (status < 0 || uv_fileno((uv_handle_t *)p, &lfd) != 0)
        return;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                emm_warn("accept: %s", strerror(errno));
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        msrv_host_accept(srv, fd);
    }
}

static void
on_signal(uv_signal_t *s, int signum)
{
    emm_notice("emm-memserver: signal %d: stopping", signum);
    uv_stop(s->loop);
}

static void
close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int check = 0, verbose = 0;
    for (int c; (c = getopt_long(argc, argv, "c:nvhV", opts, NULL)) != -1;) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'n': check = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("emm-memserver %s\n", EMM_VERSION); return 0;
        default: return usage_error(NULL);
        }
    }
    if (optind != argc)
        return usage_error("unexpected argument");
    if (path == NULL)
        return usage_error("-c CONFIG is missing");
    char err[1024] = "";
    struct msrv_config *cfg;
    if (msrv_config_load(path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "emm-memserver: %s\n", err);
        return 1;
    }
    emm_log_init("emm-memserver", 0, verbose ? EMM_LOG_DEBUG : cfg->log_level);
    signal(SIGPIPE, SIG_IGN);

    static struct msrv srv;
    pthread_mutex_init(&srv.lock, NULL);
    srv.max_hosts = cfg->max_hosts;
    srv.host_dead = host_dead;
    int status = 1;
    if (cfg->tls) {
        struct emm_tls_params tp = {.psk_file = cfg->tls_psk_file, .ca_file = cfg->tls_ca,
                                    .cert_file = cfg->tls_cert, .key_file = cfg->tls_key};
        if (emm_tls_create(&tp, 1, &srv.tls, err, sizeof(err)) < 0) {
            emm_err("emm-memserver: %s: TLS credentials: %s", path, err);
            msrv_config_free(cfg);
            return 1;
        }
    }
    struct emm_backend_key *keys = calloc(cfg->nbackend_keys + 1, sizeof(*keys));
    for (size_t i = 0; keys != NULL && i < cfg->nbackend_keys; i++)
        keys[i] = (struct emm_backend_key){cfg->backend_keys[i].key, cfg->backend_keys[i].value,
                                           cfg->backend_keys[i].line};
    struct emm_backend_args ba = {.spec = cfg->backend, .fs_name = "memserver", .file = path,
                                  .line = cfg->backend_line, .state_dir = cfg->state_dir,
                                  .plugin_dir = cfg->plugin_dir, .keys = keys,
                                  .nkeys = cfg->nbackend_keys};
    if (keys == NULL || emm_backend_open(&ba, &srv.backend, err, sizeof(err)) < 0) {
        emm_err("emm-memserver: %s", keys == NULL ? "out of memory" : err);
        goto out_tls;
    }
    if (check) {
        printf("emm-memserver: %s: configuration ok\n", path);
        status = 0;
        goto out_backend;
    }
    int rc = emm_backend_start(srv.backend);
    if (rc < 0) {
        emm_err("emm-memserver: backend %s failed to start: %s", cfg->backend, strerror(-rc));
        goto out_backend;
    }
    int lfd = emm_tcp_listen(cfg->listen);
    if (lfd < 0) {
        emm_err("emm-memserver: listen on %s: %s", cfg->listen, strerror(-lfd));
        goto out_backend;
    }
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    if (!cfg->tls)
        emm_warn("emm-memserver: WARNING: tls = off: PLAIN TEXT, no authentication; only "
                 "loopback peers are accepted (for tests)");

    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_poll_t listener;
    uv_signal_t sigterm, sigint;
    uv_poll_init(&loop, &listener, lfd);
    listener.data = &srv;
    uv_poll_start(&listener, UV_READABLE, on_listen);
    uv_async_init(&loop, &reap_async, on_reap);
    reap_async.data = &srv;
    uv_signal_init(&loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(&loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    emm_notice("emm-memserver %s: listening on %s (%s), backend %s, up to %u hosts", EMM_VERSION,
               cfg->listen, cfg->tls ? (srv.tls && !strcmp(emm_tls_mode(srv.tls), "psk")
                                            ? "TLS 1.3, pre-shared keys"
                                            : "TLS 1.3, X.509")
                                     : "PLAIN TEXT",
               cfg->backend, cfg->max_hosts);
    uv_run(&loop, UV_RUN_DEFAULT);

    uv_poll_stop(&listener);
    close(lfd);
    msrv_hosts_close_all(&srv);
    uv_walk(&loop, close_cb, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    msrv_objects_free(&srv);
    uint64_t lk_granted, lk_refused, lk_cancelled, lk_held;
    msrv_locks_stats(&lk_granted, &lk_refused, &lk_cancelled, &lk_held);
    msrv_locks_free();
    emm_notice("emm-memserver: record locks: %llu granted, %llu refused, %llu cancelled",
               (unsigned long long)lk_granted, (unsigned long long)lk_refused,
               (unsigned long long)lk_cancelled);
    emm_backend_sync(srv.backend, UINT64_MAX);
    emm_notice("emm-memserver: stopped (%llu hosts served, %llu refused, %llu lost; "
               "%llu pages supplied, %llu stored, %llu revoked, %llu granted; "
               "%llu stale returns dropped, %llu bad messages)",
               (unsigned long long)atomic_load(&srv.st.hosts_accepted),
               (unsigned long long)atomic_load(&srv.st.hosts_refused),
               (unsigned long long)atomic_load(&srv.st.hosts_lost),
               (unsigned long long)atomic_load(&srv.st.pages_supplied),
               (unsigned long long)atomic_load(&srv.st.pages_stored),
               (unsigned long long)atomic_load(&srv.st.revokes),
               (unsigned long long)atomic_load(&srv.st.grants),
               (unsigned long long)atomic_load(&srv.st.stale_returns),
               (unsigned long long)atomic_load(&srv.st.bad_messages));
    status = 0;
out_backend:
    if (srv.backend != NULL)
        emm_backend_close(srv.backend);
out_tls:
    free(keys);
    emm_tls_free(srv.tls);
    msrv_config_free(cfg);
    return status;
}
