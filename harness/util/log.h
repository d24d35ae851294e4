/* log.h — the harness log: leveled messages to stderr ("[warn] plugin: msg"). Quiet mode shows
 * only warnings and errors. Level names match tp_log_level in telepathy/plugin.h. */
#ifndef TP_UTIL_LOG_H
#define TP_UTIL_LOG_H

#include <stdarg.h>

#include "telepathy/plugin.h"

/* Messages below level are dropped (default TP_LOG_INFO). */
void tp_log_set_level(tp_log_level level);
tp_log_level tp_log_get_level(void);
/* quiet = 1 sets the level to TP_LOG_WARN; quiet = 0 restores TP_LOG_INFO. */
void tp_log_set_quiet(int quiet);
/* Parses "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int tp_log_level_parse(const char *s);
const char *tp_log_level_name(tp_log_level level);

/* who: component or plugin name (may be NULL). */
void tp_log(tp_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tp_vlog(tp_log_level level, const char *who, const char *fmt, va_list ap);

#endif
