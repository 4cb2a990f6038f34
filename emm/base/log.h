/*
 * log.h - emm_log: one line per event, to stderr in the foreground and to
 * syslog once detached. Thread-safe (one write(2) or syslog(3) per line).
 */
#ifndef EMM_LOG_H
#define EMM_LOG_H

#include <emm/backend.h> /* enum emm_log_level */

void emm_log_init(const char *ident, int use_syslog, int min_level);
void emm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define emm_debug(...)  emm_log(EMM_LOG_DEBUG, __VA_ARGS__)
#define emm_info(...)   emm_log(EMM_LOG_INFO, __VA_ARGS__)
#define emm_notice(...) emm_log(EMM_LOG_NOTICE, __VA_ARGS__)
#define emm_warn(...)   emm_log(EMM_LOG_WARN, __VA_ARGS__)
#define emm_err(...)    emm_log(EMM_LOG_ERR, __VA_ARGS__)

#endif
