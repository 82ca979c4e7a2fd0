/* kiln: the logger. */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kiln/log.h"

static kiln_log_level threshold = KILN_LOG_INFO;
static bool as_json;
static FILE *out_stream;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "debug", "info", "warn", "error", "off" };

void
kiln_log_setup (kiln_log_level level, bool json)
{
        threshold = level;
        as_json = json;
}

void
kiln_log_set_stream (FILE *stream)
{
        out_stream = stream;
}

kiln_log_level
kiln_log_get_level (void)
{
        return threshold;
}

int
kiln_log_level_parse (const char *s, kiln_log_level *out)
{
        for (int i = 0; i <= KILN_LOG_OFF; i++)
                if (strcmp (s, level_names[i]) == 0) {
                        *out = (kiln_log_level) i;
                        return 0;
                }
        return -1;
}

/* JSON string escaping is also what keeps a text line one line. */
static void
put_escaped (FILE *f, const char *s, bool json)
{
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '\n')
                        fputs ("\\n", f);
                else if (*p == '\r')
                        fputs ("\\r", f);
                else if (*p == '\t')
                        fputs ("\\t", f);
                else if (json && (*p == '"' || *p == '\\'))
                        fprintf (f, "\\%c", *p);
                else if (*p < 0x20 || *p == 0x7f)
                        fprintf (f, "\\u%04x", *p);
                else
                        fputc (*p, f);
        }
}

static void
put_time (FILE *f)
{
        struct timespec ts;
        struct tm tm;
        char buf[32];

        clock_gettime (CLOCK_REALTIME, &ts);
        gmtime_r (&ts.tv_sec, &tm);
        strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf (f, "%s.%03ldZ", buf, ts.tv_nsec / 1000000);
}

void
kiln_log_fields (kiln_log_level level, const char *const *fields, const char *fmt, ...)
{
        va_list ap;
        char *msg = NULL, *line = NULL;
        size_t len = 0;
        FILE *f;

        if (level < threshold || level >= KILN_LOG_OFF)
                return;
        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0)
                msg = NULL;
        va_end (ap);
        if (msg == NULL)
                return;

        /* The line is made in memory and written with one call: the log
         * stream is usually stderr, unbuffered, where every fputc would be a
         * write(2) of its own (and a request log line costs ~200 of them). */
        f = open_memstream (&line, &len);
        if (f == NULL) {
                free (msg);
                return;
        }
        if (as_json) {
                fputs ("{\"time\":\"", f);
                put_time (f);
                fprintf (f, "\",\"level\":\"%s\",\"msg\":\"", level_names[level]);
                put_escaped (f, msg, true);
                fputc ('"', f);
                for (const char *const *kv = fields; kv && kv[0] && kv[1]; kv += 2) {
                        fputs (",\"", f);
                        put_escaped (f, kv[0], true);
                        fputs ("\":\"", f);
                        put_escaped (f, kv[1], true);
                        fputc ('"', f);
                }
                fputs ("}\n", f);
        } else {
                fprintf (f, "kiln: %s: ", level_names[level]);
                put_escaped (f, msg, false);
                for (const char *const *kv = fields; kv && kv[0] && kv[1]; kv += 2) {
                        fprintf (f, " %s=", kv[0]);
                        put_escaped (f, kv[1], false);
                }
                fputc ('\n', f);
        }
        fclose (f);
        free (msg);

        pthread_mutex_lock (&lock);
        f = out_stream ? out_stream : stderr;
        fwrite (line, 1, len, f);
        fflush (f);
        pthread_mutex_unlock (&lock);
        free (line);
}
