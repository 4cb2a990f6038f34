/*
 * emmctl_top.c - `emmctl top [INTERVAL [COUNT]]`: a refreshing view of a
 * running emmd, like top(1) or iostat(1). Every INTERVAL seconds (default 2)
 * it fetches `metrics` (the Prometheus text of metrics.c) and shows, per
 * filesystem, the rates since the previous sample (faults/s, read and write
 * MB/s, pageouts/s, swap in and out pages/s), resident, dirty and
 * double-paged pages and the p99 fault latency of the interval (from the
 * histogram's buckets); a daemon line shows the pool and emmd's RSS against
 * resident-limit. On a terminal it redraws the screen and `q` quits (the
 * terminal is restored on q, COUNT, SIGINT or SIGTERM); otherwise it prints
 * one frame after another. COUNT frames, then exit (default: until q).
 *
 * Single-threaded; the only global is the saved terminal state.
 */
#include "emmctl_top.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl_client.h"

#define MAX_FS 64
#define MAX_BUCKETS 64

struct fs_sample {
    char name[72];
    double faults, rbytes, wbytes, pageouts, swin, swout, resident, dirty, dbl;
    double le[MAX_BUCKETS], cnt[MAX_BUCKETS];
    int nb;
};

struct sample {
    double when; /* monotonic seconds */
    double uptime, limit, pool, pool_dirty, rss, swap_size, swap_used;
    char version[32];
    struct fs_sample fs[MAX_FS];
    int nfs;
};

static struct termios saved_tio;
static int tio_saved;
static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void
restore_terminal(void)
{
    if (tio_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
        tio_saved = 0;
    }
}

static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The value of label KEY in a "{a="x",b="y"}" list, into buf; 0 if found. */
static int
label(const char *labels, const char *key, char *buf, size_t len)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "%s=\"", key);
    const char *p = strstr(labels, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (e == NULL || (size_t)(e - p) >= len)
        return -1;
    memcpy(buf, p, (size_t)(e - p));
    buf[e - p] = '\0';
    return 0;
}

static struct fs_sample *
fs_of(struct sample *s, const char *name)
{
    for (int i = 0; i < s->nfs; i++)
        if (strcmp(s->fs[i].name, name) == 0)
            return &s->fs[i];
    if (s->nfs == MAX_FS)
        return NULL;
    struct fs_sample *f = &s->fs[s->nfs++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

/* Parses the metrics text into s. */
static void
parse(char *text, struct sample *s)
{
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *sp = strrchr(line, ' ');
        if (sp == NULL)
            continue;
        *sp = '\0';
        double v = strtod(sp + 1, NULL);
        char *brace = strchr(line, '{');
        const char *labels = "";
        if (brace != NULL) {
            *brace = '\0';
            labels = brace + 1;
        }
        const char *n = line;
        char fsname[72], le[32];
        if (strcmp(n, "emm_build_info") == 0)
            label(labels, "version", s->version, sizeof(s->version));
        else if (strcmp(n, "emm_uptime_seconds") == 0)
            s->uptime = v;
        else if (strcmp(n, "emm_resident_limit_bytes") == 0)
            s->limit = v;
        else if (strcmp(n, "emm_pool_resident_bytes") == 0)
            s->pool = v;
        else if (strcmp(n, "emm_pool_dirty_bytes") == 0)
            s->pool_dirty = v;
        else if (strcmp(n, "emm_process_resident_bytes") == 0)
            s->rss = v;
        else if (strcmp(n, "emm_swap_size_bytes") == 0)
            s->swap_size = v;
        else if (strcmp(n, "emm_swap_used_bytes") == 0)
            s->swap_used = v;
        if (label(labels, "fs", fsname, sizeof(fsname)) < 0)
            continue;
        struct fs_sample *f = fs_of(s, fsname);
        if (f == NULL)
            continue;
        if (strcmp(n, "emm_faults_total") == 0)
            f->faults = v;
        else if (strcmp(n, "emm_read_bytes_total") == 0)
            f->rbytes = v;
        else if (strcmp(n, "emm_write_bytes_total") == 0)
            f->wbytes = v;
        else if (strcmp(n, "emm_pageouts_total") == 0)
            f->pageouts = v;
        else if (strcmp(n, "emm_swap_in_pages_total") == 0)
            f->swin = v;
        else if (strcmp(n, "emm_swap_out_pages_total") == 0)
            f->swout = v;
        else if (strcmp(n, "emm_resident_pages") == 0)
            f->resident = v;
        else if (strcmp(n, "emm_dirty_pages") == 0)
            f->dirty = v;
        else if (strcmp(n, "emm_double_paged_total") == 0)
            f->dbl = v;
        else if (strcmp(n, "emm_fault_latency_seconds_bucket") == 0 &&
                 label(labels, "le", le, sizeof(le)) == 0 && f->nb < MAX_BUCKETS) {
            f->le[f->nb] = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
            f->cnt[f->nb++] = v;
        }
    }
}

static int
fetch(const char *sock, struct sample *s, char **why)
{
    char *argv[] = {"metrics"};
    char *body = NULL, *err = NULL;
    int rc = ctl_request(sock, 1, argv, &body, &err);
    if (rc < 0) {
        *why = err;
        free(body);
        return rc;
    }
    free(err);
    memset(s, 0, sizeof(*s));
    s->when = mono_now();
    parse(body, s);
    free(body);
    return 0;
}

/* The p99 of the faults between a and b (cumulative buckets), in us; <0 if none. */
static double
p99_us(const struct fs_sample *a, const struct fs_sample *b)
{
    if (a == NULL || a->nb != b->nb || b->nb == 0)
        return -1;
    double total = b->cnt[b->nb - 1] - a->cnt[a->nb - 1];
    if (total <= 0)
        return -1;
    double rank = 0.99 * total, prev_cum = 0, prev_le = 0;
    for (int i = 0; i < b->nb; i++) {
        double cum = b->cnt[i] - a->cnt[i];
        if (cum >= rank) {
            if (isinf(b->le[i]))
                return prev_le * 1e6; /* beyond the last bound: at least that */
            double in = cum - prev_cum;
            double lo = i == 0 ? 0 : prev_le;
            return (lo + (b->le[i] - lo) * (in > 0 ? (rank - prev_cum) / in : 1)) * 1e6;
        }
        prev_cum = cum;
        prev_le = b->le[i];
    }
    return -1;
}

static const char *
human(double bytes, char *buf, size_t len)
{
    static const char units[] = "BKMGTP";
    int u = 0;
    while (bytes >= 1024 && u < 5) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f%c" : "%.0f%c", bytes, units[u]);
    return buf;
}

static void
frame(const struct sample *prev, const struct sample *cur, double interval, int tty)
{
    char a[16], b[16], c[16], e[16], f[16], g[16];
    double dt = prev ? cur->when - prev->when : 0;
    long up = (long)cur->uptime;
    if (tty)
        fputs("\033[H\033[2J", stdout);
    printf("emmd %s  up %ldd%02ldh%02ldm%02lds  pool %s/%s (%.1f%%)  dirty %s  rss %s (%.0f%% of "
           "limit)  swap %s/%s  every %.1fs\n\n",
           cur->version, up / 86400, up / 3600 % 24, up / 60 % 60, up % 60,
           human(cur->pool, a, sizeof(a)), human(cur->limit, b, sizeof(b)),
           cur->limit > 0 ? 100 * cur->pool / cur->limit : 0, human(cur->pool_dirty, c, sizeof(c)),
           human(cur->rss, e, sizeof(e)), cur->limit > 0 ? 100 * cur->rss / cur->limit : 0,
           human(cur->swap_used, f, sizeof(f)), human(cur->swap_size, g, sizeof(g)), interval);
    printf("%-16s %9s %9s %9s %9s %8s %8s %10s %9s %9s %10s\n", "FS", "FAULTS/s", "READ MB/s",
           "WRITE MB/s", "PGOUT/s", "SWPIN/s", "SWPOUT/s", "RESIDENT", "DIRTY", "DBLPAGED",
           "P99 us");
    for (int i = 0; i < cur->nfs; i++) {
        const struct fs_sample *n = &cur->fs[i], *o = NULL;
        for (int j = 0; prev && j < prev->nfs; j++)
            if (strcmp(prev->fs[j].name, n->name) == 0)
                o = &prev->fs[j];
        char r[6][16];
        if (o != NULL && dt > 0) {
            snprintf(r[0], 16, "%.0f", (n->faults - o->faults) / dt);
            snprintf(r[1], 16, "%.1f", (n->rbytes - o->rbytes) / dt / 1048576);
            snprintf(r[2], 16, "%.1f", (n->wbytes - o->wbytes) / dt / 1048576);
            snprintf(r[3], 16, "%.0f", (n->pageouts - o->pageouts) / dt);
            snprintf(r[4], 16, "%.0f", (n->swin - o->swin) / dt);
            snprintf(r[5], 16, "%.0f", (n->swout - o->swout) / dt);
        } else {
            for (int k = 0; k < 6; k++)
                snprintf(r[k], 16, "-");
        }
        double p = p99_us(o, n);
        char ps[16];
        if (p < 0)
            snprintf(ps, sizeof(ps), "-");
        else
            snprintf(ps, sizeof(ps), "%.1f", p);
        printf("%-16.16s %9s %9s %9s %9s %8s %8s %10.0f %9.0f %9.0f %10s\n", n->name, r[0], r[1],
               r[2], r[3], r[4], r[5], n->resident, n->dirty, n->dbl, ps);
    }
    if (tty)
        printf("\n(q quits)\n");
    else
        printf("\n");
    fflush(stdout);
}

/* Waits up to secs for 'q' on a terminal (or just sleeps). 1 if q was typed. */
static int
wait_key(double secs, int tty)
{
    double end = mono_now() + secs;
    for (;;) {
        double left = end - mono_now();
        if (left <= 0 || stop_requested)
            return 0;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(tty ? &p : NULL, tty ? 1 : 0, (int)(left * 1000) + 1);
        if (r > 0) {
            char ch;
            ssize_t n = read(STDIN_FILENO, &ch, 1);
            if (n == 1 && (ch == 'q' || ch == 'Q'))
                return 1;
            if (n == 0)
                return 1; /* the terminal went away */
        }
    }
}

int
emmctl_top(const char *sock, int argc, char **argv)
{
    double interval = 2;
    long count = 0;
    char *end;
    if (argc >= 1) {
        interval = strtod(argv[0], &end);
        if (*end != '\0' || !(interval >= 0.1 && interval <= 3600)) {
            fprintf(stderr, "emmctl: top: bad interval '%s' (seconds, 0.1..3600)\n", argv[0]);
            return 2;
        }
    }
    if (argc >= 2) {
        count = strtol(argv[1], &end, 10);
        if (*end != '\0' || count < 1) {
            fprintf(stderr, "emmctl: top: bad count '%s' (a number of refreshes >= 1)\n", argv[1]);
            return 2;
        }
    }
    struct sample *s[2] = {calloc(1, sizeof(struct sample)), calloc(1, sizeof(struct sample))};
    if (s[0] == NULL || s[1] == NULL) {
        free(s[0]);
        free(s[1]);
        fprintf(stderr, "emmctl: top: out of memory\n");
        return 1;
    }
    int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (tty && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios raw = saved_tio;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
            tio_saved = 1;
    }
    int status = 0, cur = 0, have_prev = 0;
    for (long shown = 0; !stop_requested;) {
        char *why = NULL;
        int rc = fetch(sock, s[cur], &why);
        if (rc < 0) {
            restore_terminal();
            fprintf(stderr, "emmctl: %s: %s\n", sock, why ? why : strerror(-rc));
            free(why);
            status = 1;
            break;
        }
        frame(have_prev ? s[!cur] : NULL, s[cur], interval, tty);
        have_prev = 1;
        cur = !cur;
        if (count > 0 && ++shown >= count)
            break;
        if (wait_key(interval, tty))
            break;
    }
    restore_terminal();
    free(s[0]);
    free(s[1]);
    return status;
}
