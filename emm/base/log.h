/*
 * log.h - emm_log: one line per event, to one of four sinks chosen once by
 * emm_log_init before threads start:
 *  - EMM_LOG_TO_STDERR: "IDENT[PID]: LEVEL: message" (command-line tools);
 *  - EMM_LOG_TO_SYSLOG: syslog(3), LOG_DAEMON (a detached daemon);
 *  - EMM_LOG_TO_STDERR_TIME: "YYYY-MM-DD HH:MM:SS.mmm IDENT[PID]: LEVEL:
 *    message", local time (a daemon in the foreground);
 *  - EMM_LOG_TO_JOURNAL: "<N>message" with N the syslog priority, which
 *    systemd-journald reads as the line's priority (stderr connected to the
 *    journal: see emm_log_stderr_is_journal).
 * Thread-safe (one write(2) or syslog(3) per line).
 */
#ifndef EMM_LOG_H
#define EMM_LOG_H

#include <emm/backend.h> /* enum emm_log_level */

enum emm_log_target {
    EMM_LOG_TO_STDERR = 0,
    EMM_LOG_TO_SYSLOG = 1,
    EMM_LOG_TO_STDERR_TIME = 2,
    EMM_LOG_TO_JOURNAL = 3,
};

void emm_log_init(const char *ident, int target, int min_level);
void emm_log_set_level(int min_level); /* any time, any thread */
void emm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 if stderr is a stream to systemd-journald: $JOURNAL_STREAM ("DEV:INODE")
 * names the device and inode of fd 2 (systemd.exec(5)). */
int emm_log_stderr_is_journal(void);

#define emm_debug(...)  emm_log(EMM_LOG_DEBUG, __VA_ARGS__)
#define emm_info(...)   emm_log(EMM_LOG_INFO, __VA_ARGS__)
#define emm_notice(...) emm_log(EMM_LOG_NOTICE, __VA_ARGS__)
#define emm_warn(...)   emm_log(EMM_LOG_WARN, __VA_ARGS__)
#define emm_err(...)    emm_log(EMM_LOG_ERR, __VA_ARGS__)

#endif
