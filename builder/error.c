/* kiln: the error object. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/buf.h"
#include "kiln/error.h"

/* Messages are one line: control characters from outside input (a server's
 * error body, a file name) would break logs and terminals. */
static void
flatten (char *s)
{
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        *s = ' ';
}

int
kiln_error_vmake (kiln_error **err, kiln_error_code code, int errno_, const char *fmt, va_list ap)
{
        kiln_error *e;
        char *msg = NULL;

        if (err == NULL || *err != NULL)
                return -1;
        if (vasprintf (&msg, fmt, ap) < 0)
                abort ();
        if (errno_ != 0) {
                char *full = kiln_strdup_printf ("%s: %s", msg, strerror (errno_));
                free (msg);
                msg = full;
        }
        flatten (msg);
        e = kiln_calloc (1, sizeof (*e));
        e->code = code;
        e->sys_errno = errno_;
        e->msg = msg;
        *err = e;
        return -1;
}

int
kiln_error_make (kiln_error **err, int errno_, const char *fmt, ...)
{
        va_list ap;
        kiln_error_code code = KILN_E_FAILED;

        if (errno_ == ENOENT)
                code = KILN_E_NOT_FOUND;
        else if (errno_ == EEXIST)
                code = KILN_E_CONFLICT;
        else if (errno_ != 0)
                code = KILN_E_IO;
        va_start (ap, fmt);
        kiln_error_vmake (err, code, errno_, fmt, ap);
        va_end (ap);
        return -1;
}

int
kiln_error_makec (kiln_error **err, kiln_error_code code, int errno_, const char *fmt, ...)
{
        va_list ap;

        va_start (ap, fmt);
        kiln_error_vmake (err, code, errno_, fmt, ap);
        va_end (ap);
        return -1;
}

int
kiln_error_wrap (kiln_error **err, const char *fmt, ...)
{
        va_list ap;
        char *ctx = NULL;
        char *msg;

        if (err == NULL || *err == NULL)
                return -1;
        va_start (ap, fmt);
        if (vasprintf (&ctx, fmt, ap) < 0)
                abort ();
        va_end (ap);
        flatten (ctx);
        msg = kiln_strdup_printf ("%s: %s", ctx, (*err)->msg);
        free (ctx);
        free ((*err)->msg);
        (*err)->msg = msg;
        return -1;
}

void
kiln_error_free (kiln_error *e)
{
        if (e == NULL)
                return;
        free (e->msg);
        free (e);
}

kiln_error *
kiln_error_take (kiln_error **err)
{
        kiln_error *e = *err;
        *err = NULL;
        return e;
}

const char *
kiln_error_msg (const kiln_error *e)
{
        return e && e->msg ? e->msg : "unknown error";
}

static const struct {
        int status;
        const char *reason;
        const char *name;
} code_table[] = {
        [0] = { 500, "InternalError", "failed" },
        [KILN_E_FAILED] = { 500, "InternalError", "failed" },
        [KILN_E_NOT_FOUND] = { 404, "NotFound", "not-found" },
        [KILN_E_AUTH] = { 401, "Unauthorized", "auth" },
        [KILN_E_INVALID] = { 400, "Invalid", "invalid" },
        [KILN_E_TOO_LARGE] = { 413, "RequestEntityTooLarge", "too-large" },
        [KILN_E_DIGEST_MISMATCH] = { 400, "DigestMismatch", "digest-mismatch" },
        [KILN_E_CONFLICT] = { 409, "Conflict", "conflict" },
        [KILN_E_TIMEOUT] = { 504, "Timeout", "timeout" },
        [KILN_E_UNSUPPORTED] = { 501, "NotImplemented", "unsupported" },
        [KILN_E_IO] = { 500, "InternalError", "io" },
        [KILN_E_NETWORK] = { 502, "ServiceUnavailable", "network" },
        [KILN_E_CANCELED] = { 499, "Canceled", "canceled" },
};

static unsigned
code_index (kiln_error_code code)
{
        unsigned i = (unsigned) code;
        return i < sizeof (code_table) / sizeof (code_table[0]) ? i : 0;
}

int
kiln_error_http_status (kiln_error_code code)
{
        return code_table[code_index (code)].status;
}

const char *
kiln_error_reason (kiln_error_code code)
{
        return code_table[code_index (code)].reason;
}

const char *
kiln_error_code_name (kiln_error_code code)
{
        return code_table[code_index (code)].name;
}
