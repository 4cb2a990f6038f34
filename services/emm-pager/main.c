/*
 * emm-pager - hosts one filesystem's backend stack and the standard pager
 * (emm/pager/pager_std.c) in a process of its own, behind a stream port
 * (emm/ipc/port_stream.c): emmd, the kernel, reaches each object's memory
 * object port by a lookup on the connection and talks the memory-object
 * protocol over it.
 *
 *   emm-pager --fs NAME --backend SPEC [--key LINE:KEY=VALUE]... [--file CONFIG]
 *             [--state-dir DIR] [--plugin-dir DIR] [--threads N] [--user USER]
 *             (--fd N | --listen PATH)
 *
 * --fd: serve the one connection on an inherited socket (emmd's socketpair,
 * pager = process) and exit when it ends; SIGINT, SIGTERM and SIGHUP are
 * ignored then (emmd ends it, after its stop flushed through it). --listen: accept connections on a
 * 0600 Unix socket (pager = unix:PATH), one at a time. --user drops to USER
 * after the backend is open. Exit status: 0 after a clean end, 1 on a setup
 * error, 2 when the peer was cut off.
 *
 * Locking: the main thread waits on `done`; the connection's own threads run
 * the pager (pager_std's locking rules).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_host.h"
#include "log.h"
#include "pager_std.h"
#include "port_stream.h"

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done, done_err;

static int
lookup(void *ctx, uint64_t id, struct emm_port **out)
{
    return pgr_std_object_port(ctx, id, out);
}

static void
on_dead(void *ctx, struct emm_stream *s, int err)
{
    (void)ctx, (void)s;
    pthread_mutex_lock(&done_lock);
    done = 1;
    done_err = err;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

static int
serve(int fd, struct pgr_std *pg, const char *fs)
{
    char label[96];
    snprintf(label, sizeof(label), "emmd for fs %s", fs);
    struct emm_stream_args a = {.label = label, .peer_role = EMM_STREAM_PEER_KERNEL,
                                .peer_uid = (uid_t)-1, .lookup = lookup, .on_dead = on_dead,
                                .ctx = pg};
    done = 0;
    struct emm_stream *s;
    int rc = emm_stream_open(fd, &a, &s);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&done_lock);
    while (!done)
        pthread_cond_wait(&done_cond, &done_lock);
    rc = done_err;
    pthread_mutex_unlock(&done_lock);
    emm_stream_close(s);
    return rc;
}

static int
drop_to(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        emm_err("emm-pager: unknown user '%s'", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        emm_err("emm-pager: cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0 && pw->pw_uid != 0) {
        emm_err("emm-pager: could regain root after dropping to %s", user);
        return -1;
    }
    return 0;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: emm-pager --fs NAME --backend SPEC [--key LINE:KEY=VALUE]... "
               "[--file CONFIG] [--state-dir DIR] [--plugin-dir DIR] [--threads N] "
               "[--user USER] [--log-level debug|info|notice|warn|error] "
               "(--fd N | --listen PATH)\n"
               "\n"
               "Hosts one filesystem's backend stack and the standard pager behind a\n"
               "stream port; emmd starts it for `pager = process` (docs/config.md).\n"
               "  -h, --help       this text\n"
               "  -V, --version    print the version\n"
               "\n"
               "Exit status: 0 ok, 1 failure, 2 usage error.\n");
}

static int
usage_error(void)
{
    usage(stderr);
    fprintf(stderr, "Try 'emm-pager --help' for more information.\n");
    return 2;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"fs", required_argument, NULL, 'n'},        {"backend", required_argument, NULL, 'b'},
        {"key", required_argument, NULL, 'k'},       {"file", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 's'}, {"plugin-dir", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},   {"user", required_argument, NULL, 'u'},
        {"fd", required_argument, NULL, 'f'},        {"listen", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
    };
    const char *fs = NULL, *spec = NULL, *file = "(command line)", *state_dir = NULL;
    const char *plugin_dir = NULL, *user = NULL, *listen_path = NULL;
    int fd = -1, level = EMM_LOG_INFO;
    unsigned threads = 2;
    struct emm_backend_key *keys = calloc((size_t)argc + 1, sizeof(*keys));
    size_t nkeys = 0;
    if (keys == NULL)
        return 1;
    for (int c; (c = getopt_long(argc, argv, "hV", opts, NULL)) != -1;) {
        switch (c) {
        case 'h': usage(stdout); free(keys); return 0;
        case 'V': printf("emm-pager %s\n", EMM_VERSION); free(keys); return 0;
        case 'n': fs = optarg; break;
        case 'b': spec = optarg; break;
        case 'c': file = optarg; break;
        case 's': state_dir = optarg; break;
        case 'p': plugin_dir = optarg; break;
        case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'u': user = optarg; break;
        case 'f': fd = atoi(optarg); break;
        case 'l': listen_path = optarg; break;
        case 'L': {
            static const char *const names[] = {"debug", "info", "notice", "warn", "error"};
            for (int i = 0; i < 5; i++)
                if (strcmp(optarg, names[i]) == 0)
                    level = EMM_LOG_DEBUG + i;
            break;
        }
        case 'k': {
            /* LINE:KEY=VALUE, the line being the key's in the config file */
            char *colon = strchr(optarg, ':'), *eq = strchr(optarg, '=');
            if (colon == NULL || eq == NULL || eq < colon) {
                fprintf(stderr, "emm-pager: bad --key '%s' (want LINE:KEY=VALUE)\n", optarg);
                free(keys);
                return usage_error();
            }
            *colon = *eq = '\0';
            keys[nkeys++] = (struct emm_backend_key){colon + 1, eq + 1, atoi(optarg)};
            break;
        }
        default: free(keys); return usage_error(); /* getopt named the option */
        }
    }
    const char *bad = optind != argc ? "unexpected argument"
                      : fs == NULL ? "--fs NAME is missing"
                      : spec == NULL ? "--backend SPEC is missing"
                      : (fd < 0) == (listen_path == NULL) ? "give one of --fd N and --listen PATH"
                      : threads < 1 || threads > 64 ? "--threads must be 1..64" : NULL;
    if (bad != NULL) {
        if (optind != argc)
            fprintf(stderr, "emm-pager: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "emm-pager: %s\n", bad);
        free(keys);
        return usage_error();
    }
    emm_log_init("emm-pager", 0, level);
    signal(SIGPIPE, SIG_IGN);
    if (fd >= 0) {
        /* emmd's child: it ends when emmd closes the connection, after emmd's
         * stop has flushed through it. A signal to the whole process group
         * (Ctrl-C, a kill of the group, a service manager's stop) must not
         * take it first: emmd would lose the pager it flushes to. */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
    }

    struct emm_backend_args a = {.spec = spec, .fs_name = fs, .file = file, .line = 0,
                                 .state_dir = state_dir, .plugin_dir = plugin_dir,
                                 .keys = keys, .nkeys = nkeys};
    char err[512] = "";
    struct emm_backend *backend;
    int rc = emm_backend_open(&a, &backend, err, sizeof(err));
    if (rc < 0) {
        emm_err("emm-pager: fs %s: %s", fs, err[0] ? err : strerror(-rc));
        return 1;
    }
    rc = emm_backend_start(backend);
    if (rc < 0) {
        emm_err("emm-pager: fs %s: backend %s failed to start: %s", fs, spec, strerror(-rc));
        emm_backend_close(backend);
        return 1;
    }
    int lfd = -1;
    if (listen_path != NULL) {
        lfd = emm_stream_listen(listen_path);
        if (lfd < 0) {
            emm_err("emm-pager: listen on %s: %s", listen_path, strerror(-lfd));
            emm_backend_close(backend);
            return 1;
        }
    }
    if (user != NULL && drop_to(user) < 0) {
        emm_backend_close(backend);
        return 1;
    }
    struct pgr_std *pg;
    rc = pgr_std_create(backend, threads, 0, &pg);
    if (rc < 0) {
        emm_err("emm-pager: fs %s: pager: %s", fs, strerror(-rc));
        emm_backend_close(backend);
        return 1;
    }
    emm_notice("emm-pager: fs %s: backend %s, serving %s%s", fs, spec,
               fd >= 0 ? "an inherited socket" : listen_path, user ? " (dropped privileges)" : "");
    int status = 0;
    if (fd >= 0) {
        rc = serve(fd, pg, fs);
        status = rc == 0 ? 0 : 2;
    } else {
        for (;;) {
            int cfd = emm_stream_accept(lfd);
            if (cfd < 0) {
                emm_err("emm-pager: accept: %s", strerror(-cfd));
                status = 1;
                break;
            }
            rc = serve(cfd, pg, fs);
            if (rc < 0)
                emm_warn("emm-pager: fs %s: connection ended: %s", fs, strerror(-rc));
        }
    }
    /* What was returned is stored; the pager's objects die with the process. */
    emm_backend_sync(backend, UINT64_MAX);
    emm_backend_close(backend);
    free(keys);
    return status;
}
