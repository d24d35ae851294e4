/* log.c — leveled logging to stderr; the level is process-wide (set once by main from -q or
 * the config). */
#include "util/log.h"

#include <stdio.h>
#include <string.h>

static tp_log_level g_level = TP_LOG_INFO;

void tp_log_set_level(tp_log_level level) {
    g_level = level;
}
tp_log_level tp_log_get_level(void) {
    return g_level;
}
void tp_log_set_quiet(int quiet) {
    g_level = quiet ? TP_LOG_WARN : TP_LOG_INFO;
}

static const char *const names[] = {"debug", "info", "warn", "error"};

int tp_log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    if (strcmp(s, "warning") == 0) return TP_LOG_WARN;
    return -1;
}

const char *tp_log_level_name(tp_log_level level) {
    return (unsigned)level < 4 ? names[level] : "?";
}

void tp_vlog(tp_log_level level, const char *who, const char *fmt, va_list ap) {
    if (level < g_level) return;
    /* one fprintf per line keeps lines whole when several processes share stderr */
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    if (who && *who)
        fprintf(stderr, "[%s] %s: %s\n", tp_log_level_name(level), who, msg);
    else
        fprintf(stderr, "[%s] %s\n", tp_log_level_name(level), msg);
}

void tp_log(tp_log_level level, const char *who, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tp_vlog(level, who, fmt, ap);
    va_end(ap);
}
