/*
 * log.c - emm_log. State is set once by emm_log_init before threads start and
 * only read afterwards, so no lock is needed; the level alone may change later
 * (emm_log_set_level, a reload), an atomic read on every call.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static int log_target = EMM_LOG_TO_STDERR;
#include <stdatomic.h>
static atomic_int log_min = EMM_LOG_INFO;
static const char *log_ident = "emm";

void
emm_log_init(const char *ident, int target, int min_level)
{
    log_ident = ident;
    log_target = target;
    log_min = min_level;
    if (target == EMM_LOG_TO_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
emm_log_set_level(int min_level)
{
    atomic_store(&log_min, min_level);
}

int
emm_log_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
emm_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "notice", "warn", "error"};
    static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
    char line[1024];
    va_list ap;

    if (level < atomic_load_explicit(&log_min, memory_order_relaxed))
        return;
    if (level < EMM_LOG_DEBUG || level > EMM_LOG_ERR)
        level = EMM_LOG_ERR;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_target == EMM_LOG_TO_SYSLOG) {
        syslog(prio[level], "%s", line);
        return;
    }
    char out[1200];
    int n;
    if (log_target == EMM_LOG_TO_JOURNAL) {
        n = snprintf(out, sizeof(out), "<%d>%s\n", prio[level], line);
    } else if (log_target == EMM_LOG_TO_STDERR_TIME) {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        n = snprintf(out, sizeof(out), "%s.%03ld %s[%d]: %s: %s\n", when, ts.tv_nsec / 1000000,
                     log_ident, (int)getpid(), names[level], line);
    } else {
        n = snprintf(out, sizeof(out), "%s[%d]: %s: %s\n", log_ident, (int)getpid(),
                     names[level], line);
    }
    if (n >= (int)sizeof(out)) { /* cut: the line still ends */
        n = sizeof(out);
        out[n - 1] = '\n';
    }
    if (write(STDERR_FILENO, out, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}
