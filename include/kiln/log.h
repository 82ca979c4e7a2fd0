/* kiln: a small logger.  Lines go to stderr, as text or as JSON lines. */
#ifndef KILN_LOG_H
#define KILN_LOG_H

#include <stdbool.h>
#include <stdio.h>

typedef enum kiln_log_level {
        KILN_LOG_DEBUG = 0,
        KILN_LOG_INFO,
        KILN_LOG_WARN,
        KILN_LOG_ERROR,
        KILN_LOG_OFF,
} kiln_log_level;

/* Sets the threshold and format for the process.  Thread-safe to call
 * before threads start; kiln_log itself is thread-safe. */
void kiln_log_setup (kiln_log_level level, bool json);

/* Redirects output (default stderr); for tests.  NULL restores stderr. */
void kiln_log_set_stream (FILE *stream);

kiln_log_level kiln_log_get_level (void);

/* Parses "debug", "info", "warn", "error", "off".  Returns -1 if unknown. */
int kiln_log_level_parse (const char *s, kiln_log_level *out);

/* Logs one line.  Newlines in the message are escaped, so a line in the log
 * is always one event.  `fields` may be NULL or a NULL-terminated list of
 * key, value strings, written as key=value (text) or members (JSON). */
void kiln_log_fields (kiln_log_level level, const char *const *fields, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#define kiln_log(level, ...) kiln_log_fields ((level), NULL, __VA_ARGS__)
#define kiln_debug(...) kiln_log (KILN_LOG_DEBUG, __VA_ARGS__)
#define kiln_info(...) kiln_log (KILN_LOG_INFO, __VA_ARGS__)
#define kiln_warn(...) kiln_log (KILN_LOG_WARN, __VA_ARGS__)
#define kiln_log_error(...) kiln_log (KILN_LOG_ERROR, __VA_ARGS__)

#endif
