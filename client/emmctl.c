/*
 * emmctl.c - command-line client of emmd's control socket:
 *   emmctl [-s SOCKET] [-c CONFIG] COMMAND [ARGS]
 * Checks the command locally, sends it with ctl_request (words that need it are
 * quoted on the wire, so any name can be sent), prints the reply body as-is.
 * Exit: 0 ok, 1 failure (config, daemon unreachable, error reply), 2 usage.
 * Single-threaded; no locking.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl_client.h"
#include "ctl_wire.h"
#include "emmctl_top.h"

#ifndef EMM_DEFAULT_CONFIG
#define EMM_DEFAULT_CONFIG "/etc/emm/emmd.conf"
#endif
#define DEFAULT_CONFIG EMM_DEFAULT_CONFIG

struct command {
    const char *name;
    int min_args, max_args; /* after the verb, --json not counted */
    int json;               /* takes --json */
    const char *synopsis;   /* the command and its arguments */
    const char *what;
};

static const struct command commands[] = {
    {"info", 0, 1, 1, "info [--json] [SECTION]",
     "daemon state: \"# Section\" then \"key:value\" lines"},
    {"ls", 0, 0, 1, "ls [--json]", "the object table: one path per object and directory"},
    {"flush", 2, 2, 0, "flush FS PATH",
     "write the dirty pages of object PATH (from FS's root) back"},
    {"memserver", 1, 1, 0, "memserver FS",
     "FS's memory server: its stats (hosts, objects, pages, invalidations) and the pages this "
     "host holds, with their access, and its round-trip latency"},
    {"metrics", 0, 0, 0, "metrics", "counters, gauges and latency histograms (Prometheus text)"},
    {"top", 0, 2, 0, "top [INTERVAL [COUNT]]",
     "refreshing per-filesystem rates and latency (q quits)"},
    {"reload", 0, 0, 0, "reload", "re-read the configuration file (as SIGHUP does)"},
    {"ping", 0, 0, 0, "ping", "check that the daemon answers"},
    {"help", 0, 0, 0, "help", "this text"},
};

static void
usage(FILE *f)
{
    size_t i;

    fprintf(f, "usage: emmctl [-s SOCKET] [-c CONFIG] COMMAND [ARGS]\n\ncommands:\n");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-24s %s\n", commands[i].synopsis, commands[i].what);
    fprintf(f, "\noptions:\n"
               "  -s, --socket=SOCKET  the daemon's control socket\n"
               "  -c, --config=CONFIG  take control-socket from this emmd configuration\n"
               "  -h, --help           this text\n"
               "  -V, --version        print the version\n"
               "\nThe socket is SOCKET, else control-socket from CONFIG, $EMM_CONFIG or %s.\n"
               "Exit status: 0 ok, 1 failure (daemon unreachable, error reply), 2 usage error.\n",
            DEFAULT_CONFIG);
}

/* A usage error: what was wrong is already said; point at --help. */
static int
usage_error(void)
{
    fprintf(stderr, "usage: emmctl [-s SOCKET] [-c CONFIG] COMMAND [ARGS]\n"
                    "Try 'emmctl --help' for more information.\n");
    return 2;
}

static const struct command *
find_command(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* The control socket named by the config file; prints the reason on failure. */
static char *
socket_from_config(const char *config)
{
    struct emm_config *cfg = NULL;
    char err[512] = "";
    char *sock;
    int rc;

    if (!config)
        config = getenv("EMM_CONFIG");
    if (!config || !*config)
        config = DEFAULT_CONFIG;
    rc = emm_config_load(config, 0, &cfg, err, sizeof err);
    if (rc < 0) {
        if (err[0])
            fprintf(stderr, "emmctl: %s\n", err);
        else
            fprintf(stderr, "emmctl: %s: %s\n", config, strerror(-rc));
        fprintf(stderr, "emmctl: give the socket with -s SOCKET\n");
        return NULL;
    }
    sock = cfg->control_socket ? strdup(cfg->control_socket) : NULL;
    emm_config_free(cfg);
    if (!sock)
        fprintf(stderr, "emmctl: %s: no control socket\n", config);
    return sock;
}

int
main(int argc, char **argv)
{
    const char *sock_opt = NULL, *config = NULL;
    const struct command *cmd;
    char line[CTL_WIRE_MAX_LINE], why[CTL_WIRE_MAX_REASON];
    char *sock, *body = NULL, *err = NULL;
    size_t linelen;
    int opt, nargs, rc, status = 0;

    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* "+": options end at the command; its own (--json) are the daemon's */
    while ((opt = getopt_long(argc, argv, "+s:c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            sock_opt = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("emmctl %s\n", EMM_VERSION);
            return 0;
        default:
            return usage_error(); /* getopt named the option */
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "emmctl: no command given\n");
        return usage_error();
    }
    cmd = find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "emmctl: unknown command '%s'\n", argv[optind]);
        return usage_error();
    }
    nargs = argc - optind - 1;
    if (cmd->json) /* --json anywhere after the verb, once; the daemon reads it */
        for (int i = optind + 1, seen = 0; i < argc; i++)
            if (strcmp(argv[i], "--json") == 0 && !seen++)
                nargs--;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        if (nargs > cmd->max_args)
            fprintf(stderr, "emmctl: %s: unexpected argument '%s' (usage: emmctl %s)\n",
                    cmd->name, argv[argc - 1], cmd->synopsis);
        else
            fprintf(stderr, "emmctl: %s: missing argument (usage: emmctl %s)\n", cmd->name,
                    cmd->synopsis);
        return 2;
    }
    if (ctl_wire_encode(argc - optind, argv + optind, line, sizeof line, &linelen, why,
                        sizeof why) < 0) {
        fprintf(stderr, "emmctl: %s: %s\n", cmd->name, why);
        return usage_error();
    }
    if (strcmp(cmd->name, "help") == 0) {
        usage(stdout);
        return 0;
    }

    sock = sock_opt ? strdup(sock_opt) : socket_from_config(config);
    if (!sock)
        return 1;
    if (strcmp(cmd->name, "top") == 0) { /* local: it polls `metrics` */
        status = emmctl_top(sock, argc - optind - 1, argv + optind + 1);
        free(sock);
        return status;
    }
    rc = ctl_request(sock, argc - optind, argv + optind, &body, &err);
    if (rc == 0) {
        fputs(body, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "emmctl: stdout: %s\n", strerror(errno));
            status = 1;
        }
    } else if (rc == -EREMOTEIO) {
        fprintf(stderr, "error: %s\n", err ? err : "");
        status = 1;
    } else {
        fprintf(stderr, "emmctl: %s: %s\n", sock, err ? err : strerror(-rc));
        status = 1;
    }
    free(body);
    free(err);
    free(sock);
    return status;
}
