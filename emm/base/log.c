/*
 * log.c - emm_log. State is set once by emm_log_init before threads start and
 * only read afterwards, so no lock is needed.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int log_syslog;
static int log_min = EMM_LOG_INFO;
static const char *log_ident = "emm";

void
emm_log_init(const char *ident, int use_syslog, int min_level)
{
    log_ident = ident;
    log_syslog = use_syslog;
    log_min = min_level;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
emm_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "notice", "warn", "error"};
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
    char line[1024];
    va_list ap;

    if (level < log_min)
        return;
    if (level < EMM_LOG_DEBUG || level > EMM_LOG_ERR)
        level = EMM_LOG_ERR;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_syslog) {
        syslog(prio[level], "%s", line);
        return;
    }
    char out[1200];
    int n = snprintf(out, sizeof(out), "%s[%d]: %s: %s\n", log_ident, (int)getpid(), names[level],
                     line);
    if (n > (int)sizeof(out))
        n = sizeof(out);
    if (write(STDERR_FILENO, out, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}
