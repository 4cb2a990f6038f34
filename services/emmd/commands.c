/*
 * commands.c - the control-socket commands of emmd: info [--json] [section],
 * ls [--json], flush, metrics (metrics.c), ping; and how they print names and values (escaped for
 * people, JSON for scripts; see docs/emmctl.md). Runs on the control server's
 * worker threads, several at once (ctl_server.h).
 *
 * ls prints each object's path from its filesystem's root ("dir/sub/name",
 * directories with a trailing '/'); flush takes such a path.
 *
 * Nothing here calls a backend or a pager's internals: flush, ls's counts and
 * the backend lines of `info` go through the kernel and the protocol.
 *
 * Locking: reads counters (atomics) and walks each filesystem's nodes under
 * fs->lock, calling only non-blocking vm queries there. No static
 * buffers: every call's state is on its own stack.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctl_wire.h"
#include "emmd.h"
#include "clock.h"
#include "log.h"

#define LD(x) ((unsigned long long)atomic_load(&(x)))

void
emmd_fs_totals(struct emmd_fs *fs, struct emmd_totals *t)
{
    pthread_mutex_lock(&fs->lock);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            if (!emmd_node_is_file(n))
                continue; /* not a memory object */
            t->objects++;
            if (n->vm == NULL)
                continue;
            struct vm_object_info info;
            vm_object_info(n->vm, &info);
            t->mapped++;
            t->resident += info.resident;
            t->dirty += info.dirty;
            t->laundry += info.laundry;
            t->errors += info.state == VM_OBJ_DEAD;
        }
    pthread_mutex_unlock(&fs->lock);
}

static int
want(const char *section, const char *name)
{
    return section == NULL || strcasecmp(section, name) == 0 || strcasecmp(section, "all") == 0;
}

/* ---- escaped output: names and values never break a line or a column ---- */

typedef size_t (*quote_fn)(const char *s, char *buf, size_t buflen, unsigned flags);

static size_t
json_quote(const char *s, char *buf, size_t buflen, unsigned flags)
{
    (void)flags;
    return ctl_wire_json_str(s, buf, buflen);
}

/* Writes s through fn (ctl_wire_quote or JSON); returns its display width
 * (characters, counting a UTF-8 sequence as one). */
static size_t
put_escaped(FILE *out, const char *s, quote_fn fn, unsigned flags)
{
    char small[512], *b = small;
    size_t n = fn(s, small, sizeof small, flags), w = 0;

    if (n >= sizeof small) {
        b = malloc(n + 1);
        if (b == NULL) {
            fputs("?", out);
            return 1;
        }
        fn(s, b, n + 1, flags);
    }
    fputs(b, out);
    for (size_t i = 0; i < n; i++)
        w += ((unsigned char)b[i] & 0xc0) != 0x80;
    if (b != small)
        free(b);
    return w;
}

/* A name for people: as is if plain, else quoted with C escapes (ctl_wire.h). */
static size_t
put_name(FILE *out, const char *name)
{
    return put_escaped(out, name, ctl_wire_quote, CTL_QUOTE_UTF8);
}

static void
put_json(FILE *out, const char *s)
{
    put_escaped(out, s, json_quote, 0);
}

/*
 * The output of info: "# Section" then "key:value" lines (values escaped so that
 * each is one line: \\ \n \t \r \xHH), or, with --json, one JSON object of
 * sections of keys. One field per key: nothing is packed into a value.
 */
struct kv {
    FILE *out;
    int json;
    int sections, keys; /* printed so far, for separators */
};

static void
kv_section(struct kv *k, const char *title)
{
    if (k->json)
        fprintf(k->out, "%s\"%s\":{", k->sections ? "},\n" : "{", title);
    else
        fprintf(k->out, "%s# %s\n", k->sections ? "\n" : "", title);
    k->sections++;
    k->keys = 0;
}

static void
kv_end(struct kv *k)
{
    if (k->json)
        fputs(k->sections ? "}}\n" : "{}\n", k->out);
}

static void kv_key(struct kv *k, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
kv_key(struct kv *k, const char *fmt, va_list ap)
{
    char key[256];

    vsnprintf(key, sizeof key, fmt, ap);
    if (k->json) {
        fputs(k->keys ? "," : "", k->out);
        put_json(k->out, key);
        fputc(':', k->out);
    } else {
        put_escaped(k->out, key, ctl_wire_quote, CTL_QUOTE_UTF8 | CTL_QUOTE_BARE);
        fputc(':', k->out);
    }
    k->keys++;
}

static void kv_u64(struct kv *k, unsigned long long v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void kv_str(struct kv *k, const char *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void kv_text(struct kv *k, const char *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
kv_u64(struct kv *k, unsigned long long v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kv_key(k, fmt, ap);
    va_end(ap);
    fprintf(k->out, k->json ? "%llu" : "%llu\n", v);
}

static void
kv_str(struct kv *k, const char *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kv_key(k, fmt, ap);
    va_end(ap);
    if (k->json) {
        put_json(k->out, v ? v : "");
    } else {
        put_escaped(k->out, v ? v : "", ctl_wire_quote, CTL_QUOTE_UTF8 | CTL_QUOTE_BARE);
        fputc('\n', k->out);
    }
}

/* v is a number as JSON writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
is_json_number(const char *v)
{
    const char *p = v + (*v == '-');

    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        return 0;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p += p[1] == '+' || p[1] == '-' ? 2 : 1;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == '\0';
}

/* A value of unknown type (a backend's "key:value" line): a JSON number if it
 * reads as one, else a string. */
static void
kv_text(struct kv *k, const char *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kv_key(k, fmt, ap);
    va_end(ap);
    if (k->json && is_json_number(v))
        fputs(v, k->out);
    else if (k->json)
        put_json(k->out, v);
    else {
        put_escaped(k->out, v, ctl_wire_quote, CTL_QUOTE_UTF8 | CTL_QUOTE_BARE);
        fputc('\n', k->out);
    }
}

/* # Memory: the pool, its queues, the pageout daemon and the default pager. */
static void
info_memory(struct emmd *d, const struct emmd_totals *t, struct kv *k)
{
    struct vm_pool *pool = vm_kernel_pool(d->kernel);
    struct vm_stats *s = vm_kernel_stats(d->kernel);
    struct vm_pool_counts c;
    vm_pool_counts(pool, &c);
    kv_section(k, "Memory");
    kv_u64(k, d->cfg->resident_limit, "resident_limit_bytes");
    kv_str(k, vm_pool_policy_name(pool), "pageout_policy");
    kv_u64(k, c.pages, "pool_pages");
    kv_u64(k, c.pages - c.free, "resident_pages");
    kv_u64(k, c.active, "active_pages");
    kv_u64(k, c.inactive, "inactive_pages");
    kv_u64(k, c.free, "free_pages");
    kv_u64(k, t->dirty, "dirty_pages");
    kv_u64(k, vm_kernel_laundry(d->kernel), "laundry_pages");
    kv_u64(k, pool->free_target, "free_target");
    kv_u64(k, pool->free_min, "free_min");
    kv_u64(k, (unsigned long long)pool->locked_in_ram, "pool_mlocked");
    /* The whole process beside the pool: resident-limit is a promise about it
     * (docs/config.md states the fixed overhead on top of the limit). */
    struct emmd_heap_stats hs;
    emmd_heap_stats(&hs);
    unsigned long long loop_threads = 0;
    for (size_t i = 0; i < d->nfs; i++)
        loop_threads += d->fs[i].nthreads;
    kv_u64(k, hs.rss_bytes, "rss_bytes");
    kv_u64(k, hs.rss_peak_bytes, "rss_peak_bytes");
    kv_u64(k, hs.rss_anon_bytes, "rss_anon_bytes");
    kv_u64(k, hs.rss_file_bytes, "rss_file_bytes");
    kv_u64(k, hs.heap_bytes, "heap_bytes");
    kv_u64(k, hs.heap_free_bytes, "heap_free_bytes");
    kv_u64(k, hs.heap_mmap_bytes, "heap_mmap_bytes");
    kv_u64(k, hs.lmdb_maps, "lmdb_maps");
    kv_u64(k, hs.lmdb_map_bytes, "lmdb_map_bytes");
    kv_u64(k, hs.lmdb_map_limit_bytes, "lmdb_map_limit_bytes");
    kv_u64(k, hs.lmdb_map_checks, "lmdb_map_checks");
    kv_u64(k, hs.lmdb_map_trims, "lmdb_map_trims");
    kv_u64(k, loop_threads * FZ_BUFFER_BYTES, "fuse_buffer_bytes");
    kv_u64(k, LD(s->staged_pages_now), "write_staged_pages");
    kv_u64(k, LD(s->blocked_writers_now), "write_blocked_now");
    kv_u64(k, LD(s->writes_staged), "writes_staged");
    kv_u64(k, LD(s->writes_blocked), "writes_blocked");
    kv_u64(k, c.second_chances, "second_chances");
    kv_u64(k, LD(s->evictions), "evictions");
    kv_u64(k, LD(s->reclaimed_clean), "reclaimed_clean");
    kv_u64(k, LD(s->frame_waits), "frame_waits");
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
        struct vm_pager_stats *p = &d->fs[i].pstats;
        kv_u64(k, LD(p->pageouts), "pageouts_%s", d->fs[i].cfg->name);
        kv_u64(k, LD(p->double_paged), "double_paged_%s", d->fs[i].cfg->name);
    }
    struct swp_dp_stats ds = {0};
    if (d->dpager != NULL)
        swp_dp_stats(d->dpager, &ds);
    kv_u64(k, d->cfg->nswaps, "swap_areas");
    kv_u64(k, ds.slots_total, "swap_total_pages");
    kv_u64(k, ds.slots_used, "swap_used_pages");
    kv_u64(k, ds.slots_total - ds.slots_used, "swap_free_pages");
    kv_u64(k, ds.pages_out, "swap_pages_out");
    kv_u64(k, LD(s->swap_faults), "swap_faults");
    kv_u64(k, LD(s->readaround_pages), "swap_readaround_pages");
    kv_u64(k, ds.full_errors, "swap_full_errors");
    kv_u64(k, ds.io_errors, "swap_io_errors");
    kv_u64(k, LD(s->double_paged), "double_paged");
    kv_u64(k, LD(s->overdue), "overdue_returns");
    kv_u64(k, LD(s->replayed), "replayed");
    kv_u64(k, LD(s->objects_killed), "objects_killed");
    kv_u64(k, LD(s->cow_overdue), "overdue_copies_on_write");
    struct swp_dp_area_stat as;
    for (size_t i = 0; d->dpager != NULL && swp_dp_area_stat(d->dpager, i, &as) == 0; i++) {
        kv_str(k, as.path, "swap_%zu.path", i);
        kv_u64(k, (unsigned long long)(long long)as.priority, "swap_%zu.priority", i);
        kv_u64(k, as.slots_total, "swap_%zu.total", i);
        kv_u64(k, as.slots_used, "swap_%zu.used", i);
        kv_str(k, as.direct ? "direct" : "buffered", "swap_%zu.io", i);
    }
}

/* A filesystem's backend lines ("key:value" each) as "FS.key:value", as
 * its pager tells them through the kernel (a data_query with
 * MO_F_QUERY_INFO on a memory object port of its own: object id 0, the
 * root directory, never a memory object), never from the backend. */
static void
info_text(void *arg, const char *text)
{
    char *copy = NULL;
    if (text != NULL && text[0] != '\0')
        copy = strdup(text);
    emmd_twait_done_payload(arg, 0, copy);
}

static void
info_backend(struct emmd_fs *fs, struct kv *k)
{
    struct emm_port *port;
    if (emmd_object_port(fs, EMM_CATALOG_ROOT, &port) < 0)
        return;
    struct emmd_twait *w = emmd_twait_new();
    if (w == NULL) {
        emm_port_unref(port);
        return;
    }
    uint64_t deadline = atomic_load(&fs->deadline_ms);
    vm_kernel_query_info(fs->d->kernel, port, &fs->pstats, deadline, info_text, w);
    emm_port_unref(port);
    char *buf = emmd_twait_payload(w, deadline ? (int)deadline : 10000), *save = NULL;
    if (buf == NULL)
        return;
    int layer = 0;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (colon == NULL) {
            kv_text(k, "", "%s.%s", fs->cfg->name, line);
            continue;
        }
        *colon = '\0';
        if (k->json && strcmp(line, "layer") == 0) /* the one key a stack repeats */
            kv_text(k, colon + 1, "%s.layer.%d", fs->cfg->name, layer++);
        else
            kv_text(k, colon + 1, "%s.%s", fs->cfg->name, line);
    }
    free(buf);
}

static int
cmd_info(struct emmd *d, int argc, char **argv, FILE *out)
{
    static const char *const known[] = {"server", "memory", "objects", "pagers", "faults", "all"};
    const char *section = NULL;
    struct kv kv = {.out = out}, *k = &kv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && !kv.json) {
            kv.json = 1;
            continue;
        }
        int ok = 0;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
            ok |= strcasecmp(argv[i], known[j]) == 0;
        if (ok && section != NULL) {
            fputs("one section at most (or all)\n", out);
            return -EINVAL;
        }
        if (!ok) {
            fputs("unknown section ", out);
            put_escaped(out, argv[i], ctl_wire_quote, 0);
            fputs(" (server, memory, objects, pagers, faults, all; --json)\n", out);
            return -EINVAL;
        }
        section = argv[i];
    }
    struct emmd_totals t = {0};
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed)
        emmd_fs_totals(&d->fs[i], &t);
    struct vm_stats *s = vm_kernel_stats(d->kernel);

    if (want(section, "server")) {
        kv_section(k, "Server");
        kv_str(k, EMM_VERSION, "version");
        kv_u64(k, (unsigned long long)getpid(), "pid");
        kv_u64(k, (unsigned long long)(time(NULL) - d->start_time), "uptime_seconds");
        kv_u64(k, emmd_live_fs(d), "filesystems");
        kv_str(k, d->cfg->path, "config_file");
        kv_str(k, d->cfg->control_socket, "control_socket");
        kv_u64(k, d->cfg->busy_poll_us, "busy_poll_us");
        kv_u64(k, d->cfg->fuse_threads, "fuse_threads");
    }
    if (want(section, "memory"))
        info_memory(d, &t, k);
    if (want(section, "objects")) {
        kv_section(k, "Objects");
        kv_u64(k, t.objects, "objects");
        kv_u64(k, t.mapped, "objects_mapped");
        kv_u64(k, t.errors, "objects_in_error");
        for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
            struct emmd_totals ft = {0};
            const char *name = d->fs[i].cfg->name;
            emmd_fs_totals(&d->fs[i], &ft);
            kv_u64(k, ft.objects, "fs_%s.objects", name);
            kv_u64(k, ft.resident, "fs_%s.resident", name);
            kv_u64(k, ft.dirty, "fs_%s.dirty", name);
            kv_str(k, d->fs[i].cfg->mountpoint, "fs_%s.mountpoint", name);
        }
    }
    if (want(section, "pagers")) {
        kv_section(k, "Pagers");
        for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
            struct emmd_fs *fs = &d->fs[i];
            struct vm_pager_stats *v = &fs->pstats;
            const char *name = fs->cfg->name;
            kv_u64(k, LD(v->pageouts), "paging_%s.pageouts", name);
            kv_u64(k, LD(v->double_paged), "paging_%s.double_paged", name);
            kv_u64(k, LD(v->overdue), "paging_%s.overdue", name);
            kv_u64(k, LD(v->replayed), "paging_%s.replayed", name);
            kv_u64(k, LD(v->swap_faults), "paging_%s.swap_faults", name);
            kv_u64(k, LD(v->killed), "paging_%s.killed", name);
            kv_u64(k, atomic_load(&fs->deadline_ms), "paging_%s.deadline_ms", name);
            if (fs->pconn != NULL) {
                struct emmd_pager_info pi;
                emmd_pager_conn_info(fs, &pi);
                kv_str(k, fs->cfg->backend, "pager_%s.backend", name);
                kv_str(k, fs->cfg->pager_mode == EMM_PAGER_PROCESS ? "process"
                          : fs->cfg->pager_mode == EMM_PAGER_TCP   ? "tcp"
                                                                   : "unix",
                       "pager_%s.mode", name);
                if (fs->cfg->pager_mode == EMM_PAGER_UNIX)
                    kv_str(k, fs->cfg->pager_socket, "pager_%s.socket", name);
                if (fs->cfg->pager_mode == EMM_PAGER_TCP)
                    kv_str(k, fs->cfg->pager_addr, "pager_%s.address", name);
                kv_str(k, pi.up ? "up" : "down", "pager_%s.state", name);
                kv_u64(k, (uint64_t)pi.pid, "pager_%s.pid", name);
                kv_u64(k, pi.uptime_ms / 1000, "pager_%s.uptime_s", name);
                kv_u64(k, pi.restarts, "pager_%s.restarts", name);
                kv_u64(k, pi.in_flight, "pager_%s.in_flight", name);
                kv_u64(k, pi.sent, "pager_%s.messages_sent", name);
                kv_u64(k, pi.received, "pager_%s.messages_received", name);
                kv_u64(k, pi.reinits, "pager_%s.reinits", name);
                kv_u64(k, LD(v->lost_now), "pager_%s.objects_waiting", name);
                kv_u64(k, LD(v->lost), "pager_%s.objects_lost", name);
                kv_u64(k, LD(v->lost_eio), "pager_%s.lost_eio", name);
                kv_u64(k, LD(v->stale_answers), "pager_%s.stale_answers", name);
                /* round trip: data_request to its first answer, as the kernel saw it */
                struct emmd_hist_snap rh;
                emmd_hist_snap_counters(v->request_lat.bucket, &v->request_lat.sum_ns, &rh);
                char rv[32];
                snprintf(rv, sizeof(rv), "%.1f",
                         rh.count ? (double)rh.sum_ns / (double)rh.count / 1e3 : 0.0);
                kv_str(k, rv, "pager_%s.rtt_mean_us", name);
                snprintf(rv, sizeof(rv), "%.1f", emmd_hist_quantile(&rh, 0.99) / 1e3);
                kv_str(k, rv, "pager_%s.rtt_p99_us", name);
                kv_u64(k, pi.shm_pages, "pager_%s.shm_slots", name);
                kv_u64(k, pi.shm_lent, "pager_%s.shm_slots_lent", name);
                kv_u64(k, pi.shm_held, "pager_%s.shm_slots_held", name);
                kv_u64(k, pi.shm_msgs, "pager_%s.shm_messages", name);
                kv_u64(k, pi.shm_waits, "pager_%s.shm_waits", name);
                continue;
            }
            if (fs->pager == NULL) {
                kv_str(k, "none", "pager_%s.backend", name);
                kv_str(k, "default-pager", "pager_%s.mode", name);
            } else {
                kv_str(k, fs->cfg->backend, "pager_%s.backend", name);
                kv_str(k, pgr_std_is_inline(fs->pager) ? "inline" : "threaded", "pager_%s.mode",
                       name);
            }
            /* The protocol traffic as the kernel saw it: no reach into the pager. */
            kv_u64(k, LD(v->msg_inits), "pager_%s.inits", name);
            kv_u64(k, LD(v->msg_requests), "pager_%s.requests", name);
            kv_u64(k, LD(v->msg_supplies), "pager_%s.supplies", name);
            kv_u64(k, LD(v->msg_unavailable), "pager_%s.unavailable", name);
            kv_u64(k, LD(v->msg_errors), "pager_%s.errors", name);
            kv_u64(k, LD(v->msg_unlocks), "pager_%s.unlocks", name);
            kv_u64(k, LD(v->msg_returns), "pager_%s.returns", name);
            kv_u64(k, LD(v->msg_return_errors), "pager_%s.return_errors", name);
            kv_u64(k, LD(v->msg_syncs), "pager_%s.syncs", name);
            kv_u64(k, LD(v->msg_discards), "pager_%s.discards", name);
            kv_u64(k, LD(v->msg_terminates), "pager_%s.terminates", name);
            kv_u64(k, LD(v->msg_queries), "pager_%s.queries", name);
            if (fs->pager == NULL)
                continue;
            info_backend(fs, k);
        }
    }
    if (want(section, "faults")) {
        kv_section(k, "Faults");
        kv_u64(k, LD(s->read_ops), "read_ops");
        kv_u64(k, LD(s->write_ops), "write_ops");
        kv_u64(k, LD(s->data_requests), "data_requests");
        kv_u64(k, LD(s->pages_requested), "pages_requested");
        kv_u64(k, LD(s->data_supplies), "data_supplies");
        kv_u64(k, LD(s->pages_supplied), "pages_supplied");
        kv_u64(k, LD(s->data_unavailable), "data_unavailable");
        kv_u64(k, LD(s->data_errors), "data_errors");
        kv_u64(k, LD(s->bad_messages), "bad_messages");
        kv_u64(k, LD(s->data_unlocks), "data_unlocks");
        kv_u64(k, LD(s->data_returns), "data_returns");
        kv_u64(k, LD(s->return_errors), "return_errors");
        kv_u64(k, LD(s->lock_requests), "lock_requests");
        kv_u64(k, LD(s->synchronizes), "synchronizes");
        kv_u64(k, LD(s->sync_errors), "sync_errors");
        kv_u64(k, LD(s->holes_filled), "holes_filled");
        kv_u64(k, LD(s->queries), "queries");
        kv_u64(k, LD(s->queries_expired), "queries_expired");
        /* per filesystem: FUSE READs from arrival to reply (latency.h) */
        for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
            struct emmd_fs *fs = &d->fs[i];
            const char *name = fs->cfg->name;
            struct emmd_hist_snap h;
            char v[32];
            emmd_hist_snap(&fs->read_lat, &h);
            kv_u64(k, h.count, "fs_%s.faults", name);
            kv_u64(k, LD(fs->read_bytes), "fs_%s.read_bytes", name);
            kv_u64(k, LD(fs->writes), "fs_%s.writes", name);
            kv_u64(k, LD(fs->write_bytes), "fs_%s.write_bytes", name);
            snprintf(v, sizeof(v), "%.1f", h.count ? (double)h.sum_ns / (double)h.count / 1e3 : 0.0);
            kv_str(k, v, "fs_%s.fault_mean_us", name);
            static const struct { const char *key; double q; } qs[] = {
                {"p50", 0.50}, {"p99", 0.99}, {"p99.9", 0.999}};
            for (size_t j = 0; j < 3; j++) {
                snprintf(v, sizeof(v), "%.1f", emmd_hist_quantile(&h, qs[j].q) / 1e3);
                kv_str(k, v, "fs_%s.fault_%s_us", name, qs[j].key);
            }
            /* the pager's part: data_request to its first answer (the kernel's) */
            struct vm_lat_hist *pl = &fs->pstats.request_lat;
            emmd_hist_snap_counters(pl->bucket, &pl->sum_ns, &h);
            kv_u64(k, h.count, "fs_%s.pager_requests", name);
            snprintf(v, sizeof(v), "%.1f", h.count ? (double)h.sum_ns / (double)h.count / 1e3 : 0.0);
            kv_str(k, v, "fs_%s.pager_mean_us", name);
            for (size_t j = 0; j < 3; j++) {
                snprintf(v, sizeof(v), "%.1f", emmd_hist_quantile(&h, qs[j].q) / 1e3);
                kv_str(k, v, "fs_%s.pager_%s_us", name, qs[j].key);
            }
        }
    }
    kv_end(k);
    return 0;
}

static const char *
state_name(int state)
{
    switch (state) {
    case VM_OBJ_INIT: return "init";
    case VM_OBJ_READY: return "ready";
    case VM_OBJ_DEAD: return "error";
    case VM_OBJ_TERMINATED: return "terminated";
    default: return "?";
    }
}

#define LS_NAME_WIDTH 32

/* One object of ls: a table row (the name quoted if it needs it, see
 * put_name), or a JSON object. */
static void
ls_row(FILE *out, int json, int first, const char *fsname, const char *name,
       const struct vm_object_info *info, uint64_t stored, const char *pager, const char *state)
{
    if (json) {
        fputs(first ? "\n{\"fs\":" : ",\n{\"fs\":", out);
        put_json(out, fsname);
        fputs(",\"name\":", out);
        put_json(out, name);
        fprintf(out, ",\"size\":%llu,\"resident\":%llu,\"stored\":%llu,\"swap\":%llu,\"pager\":",
                (unsigned long long)info->size, (unsigned long long)info->resident,
                (unsigned long long)stored, (unsigned long long)info->in_swap);
        put_json(out, pager);
        fputs(",\"state\":", out);
        put_json(out, state);
        fputc('}', out);
        return;
    }
    fprintf(out, "%-12s ", fsname);
    for (size_t w = put_name(out, name); w < LS_NAME_WIDTH; w++)
        fputc(' ', out);
    fprintf(out, " %14llu %10llu %10llu %10llu %-10s %s\n", (unsigned long long)info->size,
            (unsigned long long)info->resident, (unsigned long long)stored,
            (unsigned long long)info->in_swap, pager, state);
}

/* How long ls waits for the pagers' counts (each question is also bounded
 * by its pager.deadline, 10 s without one). */
#define LS_STORED_WAIT_MS 12000

static int
cmd_ls(struct emmd *d, int json, FILE *out)
{
    int first = 1;

    if (json)
        fputc('[', out);
    else
        fprintf(out, "%-12s %-*s %14s %10s %10s %10s %-10s %s\n", "FS", LS_NAME_WIDTH, "NAME",
                "SIZE", "RESIDENT", "STORED", "SWAP", "PAGER", "STATE");
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
        struct emmd_fs *fs = &d->fs[i];
        /* STORED: what the pager stores, as the kernel learns it (a count
         * query where it does not know): the counts land in the nodes. A
         * pager that does not answer in time shows its last count. */
        if (emmd_fs_stored_wait(fs, LS_STORED_WAIT_MS, NULL) < 0)
            emm_warn("ls: fs %s: the pager did not say what it stores within %d ms: "
                     "STORED shows its last counts", fs->cfg->name, LS_STORED_WAIT_MS);
        pthread_mutex_lock(&fs->lock);
        for (size_t b = 0; b < EMMD_BUCKETS; b++)
            for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
                if (n->unlinked || n == fs->root)
                    continue;
                char path[PATH_MAX];
                if (emmd_node_path(fs, n, path, sizeof(path) - 1) < 0)
                    snprintf(path, sizeof(path), "?id=%llu", (unsigned long long)n->rec.id);
                if (emmd_node_is_dir(n)) { /* a directory: its path ends in '/' */
                    strcat(path, "/");
                    struct vm_object_info none = {0};
                    ls_row(out, json, first, fs->cfg->name, path, &none, 0, "-", "dir");
                    first = 0;
                    continue;
                }
                if (!emmd_node_is_file(n))
                    continue; /* a symlink, or another name of an object listed */
                uint64_t stored = n->stored_known ? n->stored_pages : 0;
                struct vm_object_info info = {.size = n->rec.size, .state = -1};
                if (n->vm != NULL)
                    vm_object_info(n->vm, &info);
                ls_row(out, json, first, fs->cfg->name, path, &info, stored,
                       fs->cfg->backend, n->vm ? state_name(info.state) : "unmapped");
                first = 0;
            }
        pthread_mutex_unlock(&fs->lock);
    }
    if (json)
        fputs(first ? "]\n" : "\n]\n", out);
    return 0;
}

/* flush FS PATH: the kernel writes the object's dirty pages back to its pager
 * and drops them (vm_object_flush), then synchronizes; waits up to 10 s (the
 * completion may come later: emmd_twait). */
static void
flush_done(void *arg, int err)
{
    emmd_twait_done(arg, err, 0);
}

static int
flush_object(struct vm_object *vm, int timeout_ms)
{
    struct emmd_twait *w = emmd_twait_new();
    if (w == NULL)
        return -ENOMEM;
    vm_object_flush(vm, flush_done, w);
    int err = 0;
    int rc = emmd_twait(w, timeout_ms, &err, NULL);
    return rc < 0 ? rc : -err;
}

static int
cmd_flush(struct emmd *d, const char *fsname, const char *name, FILE *out)
{
    for (size_t i = 0; i < d->nfs; i++) if (!d->fs[i].removed) {
        struct emmd_fs *fs = &d->fs[i];
        if (strcmp(fs->cfg->name, fsname) != 0)
            continue;
        pthread_mutex_lock(&fs->lock);
        struct emmd_node *n = emmd_node_resolve(fs, name);
        if (n != NULL && emmd_node_is_dir(n)) {
            pthread_mutex_unlock(&fs->lock);
            put_escaped(out, name, ctl_wire_quote, 0);
            fprintf(out, " in fs %s is a directory, not an object\n", fsname);
            return -EISDIR;
        }
        struct vm_object *vm = n && n->vm ? n->vm : NULL;
        if (vm != NULL)
            vm_object_ref(vm);
        pthread_mutex_unlock(&fs->lock);
        if (n == NULL) {
            fputs("no object ", out);
            put_escaped(out, name, ctl_wire_quote, 0); /* an error line: ASCII */
            fprintf(out, " in fs %s\n", fsname);
            return -ENOENT;
        }
        if (vm == NULL) {
            fprintf(out, "flushed 0 pages (object not mapped)\n");
            return 0;
        }
        int rc = flush_object(vm, 10000);
        vm_object_unref(vm);
        if (rc < 0) {
            fprintf(out, "flush of %s ", fsname);
            put_escaped(out, name, ctl_wire_quote, 0);
            fprintf(out, " failed: %s\n", strerror(-rc));
            return rc;
        }
        fprintf(out, "flushed %s ", fsname);
        put_name(out, name);
        fputc('\n', out);
        return 0;
    }
    fputs("no filesystem ", out);
    put_escaped(out, fsname, ctl_wire_quote, 0);
    fputc('\n', out);
    return -ENOENT;
}

/* memserver FS: the memory server's stats and what this host holds of it
 * (remote_ns.c), for a filesystem with pager = tcp. */
static int
cmd_memserver(struct emmd *d, const char *fsname, FILE *out)
{
    for (size_t i = 0; i < d->nfs; i++) {
        struct emmd_fs *fs = &d->fs[i];
        if (fs->removed || strcmp(fs->cfg->name, fsname) != 0)
            continue;
        if (fs->rns == NULL) {
            fprintf(out, "fs %s has no memory server (pager = tcp:HOST:PORT)\n", fs->cfg->name);
            return -EINVAL;
        }
        return emmd_rns_stats(fs, out);
    }
    fputs("no filesystem ", out);
    put_escaped(out, fsname, ctl_wire_quote, 0);
    fputc('\n', out);
    return -ENOENT;
}

static int command(struct emmd *d, int argc, char **argv, FILE *out);

int
emmd_command(void *ctx, int argc, char **argv, FILE *out)
{
    struct emmd *d = ctx;
    if (strcmp(argv[0], "reload") == 0 && argc == 1)
        return emmd_reload(d, out); /* takes fs_lock for writing itself */
    pthread_rwlock_rdlock(&d->fs_lock); /* the filesystems stay as they are meanwhile */
    int rc = command(d, argc, argv, out);
    pthread_rwlock_unlock(&d->fs_lock);
    return rc;
}

static int
command(struct emmd *d, int argc, char **argv, FILE *out)
{
    if (strcmp(argv[0], "ping") == 0) {
        fprintf(out, "pong\n");
        return 0;
    }
    if (strcmp(argv[0], "info") == 0 && argc <= 3)
        return cmd_info(d, argc, argv, out);
    if (strcmp(argv[0], "ls") == 0 && (argc == 1 || (argc == 2 && strcmp(argv[1], "--json") == 0)))
        return cmd_ls(d, argc == 2, out);
    if (strcmp(argv[0], "flush") == 0 && argc == 3)
        return cmd_flush(d, argv[1], argv[2], out);
    if (strcmp(argv[0], "metrics") == 0 && argc == 1)
        return emmd_metrics_write(d, out);
    if (strcmp(argv[0], "memserver") == 0 && argc == 2)
        return cmd_memserver(d, argv[1], out);
    fputs("unknown command or wrong arguments: ", out);
    put_escaped(out, argv[0], ctl_wire_quote, 0);
    fputs(" (info [--json] [section], ls [--json], flush FS PATH, memserver FS, metrics, reload, "
          "ping)\n", out);
    return -EINVAL;
}
