/*
 * commands.c - the control-socket commands of emmd: info [section], ls, flush,
 * ping. Runs on the control server's thread (ctl_server.h).
 *
 * ls prints each object's path from its filesystem's root ("dir/sub/name",
 * directories with a trailing '/'); flush takes such a path.
 *
 * Locking: reads counters (atomics) and walks each filesystem's nodes under
 * fs->lock, calling only non-blocking vm and backend queries there.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "emmd.h"
#include "log.h"

#define LD(x) ((unsigned long long)atomic_load(&(x)))

struct totals {
    uint64_t objects, mapped, resident, dirty, laundry, errors;
};

static void
fs_totals(struct emmd_fs *fs, struct totals *t)
{
    pthread_mutex_lock(&fs->lock);
    for (size_t b = 0; b < EMMD_BUCKETS; b++)
        for (struct emmd_node *n = fs->by_id[b]; n; n = n->next_id) {
            if (emmd_node_is_dir(n))
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

/* # Memory: the pool, its queues, the pageout daemon and the default pager. */
static void
info_memory(struct emmd *d, const struct totals *t, FILE *out)
{
    struct vm_pool *pool = vm_kernel_pool(d->kernel);
    struct vm_stats *s = vm_kernel_stats(d->kernel);
    struct vm_pool_counts c;
    vm_pool_counts(pool, &c);
    fprintf(out,
            "# Memory\nresident_limit_bytes:%llu\npageout_policy:%s\npool_pages:%llu\n"
            "resident_pages:%llu\nactive_pages:%llu\ninactive_pages:%llu\nfree_pages:%llu\n"
            "dirty_pages:%llu\nlaundry_pages:%llu\nfree_target:%llu\nfree_min:%llu\n"
            "pool_mlocked:%d\nsecond_chances:%llu\nevictions:%llu\nreclaimed_clean:%llu\n"
            "frame_waits:%llu\n",
            (unsigned long long)d->cfg->resident_limit, pool->policy->name,
            (unsigned long long)c.pages, (unsigned long long)(c.pages - c.free),
            (unsigned long long)c.active, (unsigned long long)c.inactive,
            (unsigned long long)c.free, (unsigned long long)t->dirty,
            (unsigned long long)vm_kernel_laundry(d->kernel),
            (unsigned long long)pool->free_target, (unsigned long long)pool->free_min,
            pool->locked_in_ram, (unsigned long long)c.second_chances, LD(s->evictions),
            LD(s->reclaimed_clean), LD(s->frame_waits));
    for (size_t i = 0; i < d->nfs; i++) {
        struct vm_pager_stats *p = &d->fs[i].pstats;
        fprintf(out,
                "pageouts_%s:%llu\ndouble_paged_%s:%llu\n", d->fs[i].cfg->name, LD(p->pageouts),
                d->fs[i].cfg->name, LD(p->double_paged));
    }
    struct swp_dp_stats ds = {0};
    if (d->dpager != NULL)
        swp_dp_stats(d->dpager, &ds);
    fprintf(out,
            "swap_areas:%zu\nswap_total_pages:%llu\nswap_used_pages:%llu\nswap_free_pages:%llu\n"
            "swap_pages_out:%llu\nswap_faults:%llu\nswap_full_errors:%llu\nswap_io_errors:%llu\n"
            "double_paged:%llu\noverdue_returns:%llu\nreplayed:%llu\nobjects_killed:%llu\n"
            "overdue_copies_on_write:%llu\n",
            d->cfg->nswaps, (unsigned long long)ds.slots_total, (unsigned long long)ds.slots_used,
            (unsigned long long)(ds.slots_total - ds.slots_used), (unsigned long long)ds.pages_out,
            LD(s->swap_faults), (unsigned long long)ds.full_errors,
            (unsigned long long)ds.io_errors, LD(s->double_paged), LD(s->overdue),
            LD(s->replayed), LD(s->objects_killed), LD(s->cow_overdue));
    struct swp_dp_area_stat as;
    for (size_t i = 0; d->dpager != NULL && swp_dp_area_stat(d->dpager, i, &as) == 0; i++)
        fprintf(out, "swap_%zu:path=%s,priority=%d,total=%llu,used=%llu,io=%s\n", i, as.path,
                as.priority, (unsigned long long)as.slots_total,
                (unsigned long long)as.slots_used, as.direct ? "direct" : "buffered");
    fputc('\n', out);
}

static int
cmd_info(struct emmd *d, const char *section, FILE *out)
{
    static const char *const known[] = {"server", "memory", "objects", "pagers", "faults", "all"};
    if (section != NULL) {
        int ok = 0;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok |= strcasecmp(section, known[i]) == 0;
        if (!ok) {
            fprintf(out, "unknown section '%s' (server, memory, objects, pagers, faults)\n",
                    section);
            return -EINVAL;
        }
    }
    struct totals t = {0};
    for (size_t i = 0; i < d->nfs; i++)
        fs_totals(&d->fs[i], &t);
    struct vm_stats *s = vm_kernel_stats(d->kernel);

    if (want(section, "server")) {
        fprintf(out, "# Server\nversion:0.1.0\npid:%d\nuptime_seconds:%lld\nfilesystems:%zu\n"
                     "config_file:%s\ncontrol_socket:%s\nbusy_poll_us:%u\nfuse_threads:%u\n\n",
                (int)getpid(), (long long)(time(NULL) - d->start_time), d->nfs, d->cfg->path,
                d->cfg->control_socket, d->cfg->busy_poll_us, d->cfg->fuse_threads);
    }
    if (want(section, "memory"))
        info_memory(d, &t, out);
    if (want(section, "objects")) {
        fprintf(out, "# Objects\nobjects:%llu\nobjects_mapped:%llu\nobjects_in_error:%llu\n",
                (unsigned long long)t.objects, (unsigned long long)t.mapped,
                (unsigned long long)t.errors);
        for (size_t i = 0; i < d->nfs; i++) {
            struct totals ft = {0};
            fs_totals(&d->fs[i], &ft);
            fprintf(out, "fs_%s:objects=%llu,resident=%llu,dirty=%llu,mountpoint=%s\n",
                    d->fs[i].cfg->name, (unsigned long long)ft.objects,
                    (unsigned long long)ft.resident, (unsigned long long)ft.dirty,
                    d->fs[i].cfg->mountpoint);
        }
        fputc('\n', out);
    }
    if (want(section, "pagers")) {
        fprintf(out, "# Pagers\n");
        for (size_t i = 0; i < d->nfs; i++) {
            struct emmd_fs *fs = &d->fs[i];
            struct vm_pager_stats *v = &fs->pstats;
            fprintf(out,
                    "paging_%s:pageouts=%llu,double_paged=%llu,overdue=%llu,replayed=%llu,"
                    "swap_faults=%llu,killed=%llu,deadline_ms=%llu\n",
                    fs->cfg->name, LD(v->pageouts), LD(v->double_paged), LD(v->overdue),
                    LD(v->replayed), LD(v->swap_faults), LD(v->killed),
                    (unsigned long long)fs->cfg->pager_deadline_ms);
            if (fs->pager == NULL) {
                fprintf(out, "pager_%s:backend=none,mode=default-pager\n", fs->cfg->name);
                continue;
            }
            struct pgr_std_stats *p = pgr_std_stats(fs->pager);
            fprintf(out,
                    "pager_%s:backend=%s,mode=%s,inits=%llu,requests=%llu,supplies=%llu,"
                    "unavailable=%llu,errors=%llu,unlocks=%llu,returns=%llu,"
                    "return_errors=%llu,syncs=%llu,discards=%llu,terminates=%llu\n",
                    fs->cfg->name, fs->cfg->backend, pgr_std_is_inline(fs->pager) ? "inline" : "threaded",
                    LD(p->inits), LD(p->requests), LD(p->supplies), LD(p->unavailable),
                    LD(p->errors), LD(p->unlocks), LD(p->returns), LD(p->return_errors),
                    LD(p->syncs), LD(p->discards), LD(p->terminates));
            char buf[2048];
            if (emm_backend_info(fs->backend, buf, sizeof(buf)) == 0 && buf[0] != '\0') {
                /* Prefix each backend line with the filesystem name. */
                for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
                    fprintf(out, "%s.%s\n", fs->cfg->name, line);
            }
        }
        fputc('\n', out);
    }
    if (want(section, "faults")) {
        fprintf(out,
                "# Faults\nread_ops:%llu\nwrite_ops:%llu\ndata_requests:%llu\n"
                "pages_requested:%llu\ndata_supplies:%llu\npages_supplied:%llu\n"
                "data_unavailable:%llu\ndata_errors:%llu\ndata_unlocks:%llu\n"
                "data_returns:%llu\nreturn_errors:%llu\nlock_requests:%llu\n"
                "synchronizes:%llu\nsync_errors:%llu\n",
                LD(s->read_ops), LD(s->write_ops), LD(s->data_requests), LD(s->pages_requested),
                LD(s->data_supplies), LD(s->pages_supplied), LD(s->data_unavailable),
                LD(s->data_errors), LD(s->data_unlocks), LD(s->data_returns),
                LD(s->return_errors), LD(s->lock_requests), LD(s->synchronizes),
                LD(s->sync_errors));
    }
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

static int
cmd_ls(struct emmd *d, FILE *out)
{
    fprintf(out, "%-12s %-32s %14s %10s %10s %10s %-10s %s\n", "FS", "NAME", "SIZE",
            "RESIDENT", "STORED", "SWAP", "PAGER", "STATE");
    for (size_t i = 0; i < d->nfs; i++) {
        struct emmd_fs *fs = &d->fs[i];
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
                    fprintf(out, "%-12s %-32s %14d %10d %10d %10d %-10s %s\n", fs->cfg->name,
                            path, 0, 0, 0, 0, "-", "dir");
                    continue;
                }
                uint64_t stored = 0;
                emm_backend_stored_pages(fs->backend, n->rec.id, &stored);
                struct vm_object_info info = {.size = n->rec.size, .state = -1};
                if (n->vm != NULL)
                    vm_object_info(n->vm, &info);
                fprintf(out, "%-12s %-32s %14llu %10llu %10llu %10llu %-10s %s\n",
                        fs->cfg->name, path, (unsigned long long)info.size,
                        (unsigned long long)info.resident, (unsigned long long)stored,
                        (unsigned long long)info.in_swap, fs->cfg->backend,
                        n->vm ? state_name(info.state) : "unmapped");
            }
        pthread_mutex_unlock(&fs->lock);
    }
    return 0;
}

/* flush FS PATH: the pager asks the kernel to return dirty pages and flush them
 * (lock_request RETURN_DIRTY + flush), and waits for lock_completed. */
static int
cmd_flush(struct emmd *d, const char *fsname, const char *name, FILE *out)
{
    for (size_t i = 0; i < d->nfs; i++) {
        struct emmd_fs *fs = &d->fs[i];
        if (strcmp(fs->cfg->name, fsname) != 0)
            continue;
        pthread_mutex_lock(&fs->lock);
        struct emmd_node *n = emmd_node_resolve(fs, name);
        if (n != NULL && emmd_node_is_dir(n)) {
            pthread_mutex_unlock(&fs->lock);
            fprintf(out, "'%s' in fs %s is a directory, not an object\n", name, fsname);
            return -EISDIR;
        }
        uint64_t id = n ? n->rec.id : 0;
        int mapped = n && n->vm;
        pthread_mutex_unlock(&fs->lock);
        if (n == NULL) {
            fprintf(out, "no object '%s' in fs %s\n", name, fsname);
            return -ENOENT;
        }
        if (!mapped) {
            fprintf(out, "flushed 0 pages (object not mapped)\n");
            return 0;
        }
        if (fs->pager == NULL) {
            fprintf(out, "fs %s has temporary objects: nothing to flush them to\n", fsname);
            return -EINVAL;
        }
        int rc = pgr_std_lock_object(fs->pager, id, MO_RETURN_DIRTY, 1, VM_PROT_NO_CHANGE, 10000);
        if (rc < 0) {
            fprintf(out, "flush of %s/%s failed: %s\n", fsname, name, strerror(-rc));
            return rc;
        }
        fprintf(out, "flushed %s/%s\n", fsname, name);
        return 0;
    }
    fprintf(out, "no filesystem '%s'\n", fsname);
    return -ENOENT;
}

int
emmd_command(void *ctx, int argc, char **argv, FILE *out)
{
    struct emmd *d = ctx;
    if (strcmp(argv[0], "ping") == 0) {
        fprintf(out, "pong\n");
        return 0;
    }
    if (strcmp(argv[0], "info") == 0 && argc <= 2)
        return cmd_info(d, argc == 2 ? argv[1] : NULL, out);
    if (strcmp(argv[0], "ls") == 0 && argc == 1)
        return cmd_ls(d, out);
    if (strcmp(argv[0], "flush") == 0 && argc == 3)
        return cmd_flush(d, argv[1], argv[2], out);
    fprintf(out, "unknown command or wrong arguments: %s (info [section], ls, flush FS PATH, ping)\n",
            argv[0]);
    return -EINVAL;
}
