/* kiln: a minimal unit-test harness.  Each tests/unit/test_<module>.c is one
 * program; tests/run adds up their "N passed, N failed" lines. */
#ifndef KILN_UNIT_H
#define KILN_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failed_checks;
static int unit_passed, unit_failed;

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf (stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__,        \
                                 #cond);                                                           \
                        unit_failed_checks++;                                                      \
                }                                                                                  \
        } while (0)

#define CHECK_STR(a, b)                                                                            \
        do {                                                                                       \
                const char *a_ = (a), *b_ = (b);                                                   \
                if (a_ == NULL || b_ == NULL || strcmp (a_, b_) != 0) {                            \
                        fprintf (stderr, "  %s:%d: `%s` == `%s` failed: \"%s\" vs \"%s\"\n",       \
                                 __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",                   \
                                 b_ ? b_ : "(null)");                                              \
                        unit_failed_checks++;                                                      \
                }                                                                                  \
        } while (0)

/* Fails the check when err is set, printing the error. */
#define CHECK_OK(expr)                                                                             \
        do {                                                                                       \
                if ((expr) < 0) {                                                                  \
                        fprintf (stderr, "  %s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,    \
                                 err ? err->msg : "(no error set)");                               \
                        unit_failed_checks++;                                                      \
                }                                                                                  \
        } while (0)

#define RUN(fn)                                                                                    \
        do {                                                                                       \
                int before_ = unit_failed_checks;                                                  \
                fn ();                                                                             \
                if (unit_failed_checks == before_) {                                               \
                        unit_passed++;                                                             \
                } else {                                                                           \
                        unit_failed++;                                                             \
                        fprintf (stderr, "FAIL %s\n", #fn);                                        \
                }                                                                                  \
        } while (0)

#define UNIT_DONE(name)                                                                            \
        do {                                                                                       \
                printf ("%s: %d passed, %d failed\n", (name), unit_passed, unit_failed);           \
                return unit_failed ? 1 : 0;                                                        \
        } while (0)

#endif
