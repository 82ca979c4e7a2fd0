/* kiln: errors, made once, given context once, printed once.
 *
 * A failing function fills `*err` and returns -1 (never any other negative
 * value), so callers write `if (f (..., err) < 0) return -1;`.  The message
 * is one line without a trailing newline; errno is kept apart from it. */
#ifndef KILN_ERROR_H
#define KILN_ERROR_H

#include <stdarg.h>

/* The expected failures; each maps to an HTTP status and a reason. */
typedef enum kiln_error_code {
        KILN_E_FAILED = 1,      /* anything not below */
        KILN_E_NOT_FOUND,       /* a file, blob, manifest, object */
        KILN_E_AUTH,            /* credentials missing or refused */
        KILN_E_INVALID,         /* bad input: syntax, types, fields */
        KILN_E_TOO_LARGE,       /* a bound was exceeded */
        KILN_E_DIGEST_MISMATCH, /* content does not match its digest */
        KILN_E_CONFLICT,        /* already exists, version conflict */
        KILN_E_TIMEOUT,         /* a deadline passed */
        KILN_E_UNSUPPORTED,     /* valid, but not something kiln does */
        KILN_E_IO,              /* the local system failed */
        KILN_E_NETWORK,         /* a peer could not be reached */
        KILN_E_CANCELED,        /* stopped on request */
} kiln_error_code;

typedef struct kiln_error {
        kiln_error_code code;
        int sys_errno; /* 0 when the failure is not a system call's */
        char *msg;     /* one line, owned */
} kiln_error;

/* Fills *err (when err is not NULL and *err is NULL) with code KILN_E_FAILED
 * or, when errno_ is ENOENT, KILN_E_NOT_FOUND.  A non-zero errno_ appends
 * ": strerror".  Always returns -1.  If *err is already set it is kept: the
 * first error made is the one reported. */
int kiln_error_make (kiln_error **err, int errno_, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* As kiln_error_make, with an explicit code. */
int kiln_error_makec (kiln_error **err, kiln_error_code code, int errno_, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

int kiln_error_vmake (kiln_error **err, kiln_error_code code, int errno_, const char *fmt,
                      va_list ap);

/* Prefixes the message of *err with "CONTEXT: ".  Returns -1.  Does nothing
 * but return -1 when err or *err is NULL. */
int kiln_error_wrap (kiln_error **err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Frees an error; accepts NULL. */
void kiln_error_free (kiln_error *e);

/* Moves *err into the returned pointer (caller frees) and clears *err. */
kiln_error *kiln_error_take (kiln_error **err);

/* The message, or "unknown error" for NULL.  Borrowed. */
const char *kiln_error_msg (const kiln_error *e);

/* The HTTP status for an error code (404, 401, 400, 413, 400, 409, 504,
 * 501, 500, 502, 499, 500). */
int kiln_error_http_status (kiln_error_code code);

/* A short CamelCase reason for an error code ("NotFound", "Unauthorized",
 * "Invalid", ...), as Kubernetes Status objects use.  Static. */
const char *kiln_error_reason (kiln_error_code code);

/* A stable lower-case name for the code ("not-found", "auth", ...) for
 * --json output.  Static. */
const char *kiln_error_code_name (kiln_error_code code);

#endif
