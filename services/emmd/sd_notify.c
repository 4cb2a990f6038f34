/*
 * sd_notify.c - tells the service manager how emmd is doing (sd_notify(3),
 * libsystemd): READY=1 with a STATUS= line once every filesystem is mounted
 * and the control socket listens, STOPPING=1 when the shutdown begins. Without
 * $NOTIFY_SOCKET (not started by systemd) every call is a no-op. Called from
 * the main thread only; no state of its own.
 */
#include "emmd.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

void
emmd_notify_ready(const struct emmd *d)
{
    char status[512];
    size_t used = 0;
    size_t live = emmd_live_fs(d);
    int n = snprintf(status, sizeof(status), "serving %zu filesystem%s:", live,
                     live == 1 ? "" : "s");
    used = n > 0 ? (size_t)n : 0;
    int first = 1;
    for (size_t i = 0; i < d->nfs && used < sizeof(status); i++) if (!d->fs[i].removed) {
        n = snprintf(status + used, sizeof(status) - used, "%s %s at %s", first ? "" : ",",
                     d->fs[i].cfg->name, d->fs[i].cfg->mountpoint);
        if (n < 0)
            break;
        used += (size_t)n;
        first = 0;
    }
    if (used >= sizeof(status)) /* cut: say so */
        memcpy(status + sizeof(status) - 4, "...", 4);
    int rc = sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%d", status, (int)getpid());
    if (rc < 0)
        emm_warn("sd_notify READY=1: %s", strerror(-rc));
    else if (rc > 0)
        emm_debug("told the service manager: ready (%s)", status);
}

void
emmd_notify_stopping(void)
{
    int rc = sd_notify(0, "STOPPING=1\nSTATUS=flushing dirty pages and unmounting");
    if (rc < 0)
        emm_warn("sd_notify STOPPING=1: %s", strerror(-rc));
}

void
emmd_notify_reloading(void)
{
    int rc = sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
    if (rc < 0)
        emm_warn("sd_notify RELOADING=1: %s", strerror(-rc));
}
