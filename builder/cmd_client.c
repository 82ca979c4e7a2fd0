/* kiln get, apply, delete, logs, cancel: a small kubectl/shp for the API of
 * `kiln serve`.  Tables follow the Shipwright CRDs' printer columns, times
 * are ages as kubectl prints them, and every failure is one line. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client_private.h"
#include "kiln/buf.h"
#include "kiln/cleanup.h"
#include "kiln/log.h"
#include "kiln/serve.h"

#define SHP_API "/apis/shipwright.io/v1beta1"
#define FILE_MAX ((size_t) 16 << 20)
#define TOKEN_MAX 4096

/* ---- options, kinds, calls ---- */

static const client_kind kinds[] = {
        { { "builds", "build", NULL }, "Build", "shipwright.io", true },
        { { "buildruns", "buildrun", "br", "brs", NULL }, "BuildRun", "shipwright.io", true },
        { { "buildstrategies", "buildstrategy", "bs", "bss", NULL },
          "BuildStrategy",
          "shipwright.io",
          true },
        { { "clusterbuildstrategies", "clusterbuildstrategy", "cbs", "cbss", NULL },
          "ClusterBuildStrategy",
          "shipwright.io",
          false },
        { { "secrets", "secret", NULL }, "Secret", "", true },
};

const client_kind *
client_find_kind (const char *name)
{
        for (size_t i = 0; i < KILN_N_ELEMENTS (kinds); i++)
                for (size_t k = 0; kinds[i].names[k]; k++)
                        if (strcasecmp (kinds[i].names[k], name) == 0)
                                return &kinds[i];
        /* "builds.shipwright.io", "build.shipwright.io/v1beta1" */
        const char *dot = strchr (name, '.');
        if (dot && kiln_str_has_prefix (dot + 1, "shipwright.io")) {
                cleanup_free char *head = strndup (name, (size_t) (dot - name));
                const client_kind *k = head ? client_find_kind (head) : NULL;
                return k && *k->group ? k : NULL;
        }
        return NULL;
}

const client_kind *
client_kind_of (const char *kind)
{
        for (size_t i = 0; kind && i < KILN_N_ELEMENTS (kinds); i++)
                if (strcmp (kinds[i].kind, kind) == 0)
                        return &kinds[i];
        return NULL;
}

char *
client_collection (const client *c, const client_kind *k, const char *ns)
{
        const char *api = *k->group ? SHP_API : "/api/v1";

        if (!k->namespaced)
                return kiln_strdup_printf ("%s/%s", api, k->names[0]);
        return kiln_strdup_printf ("%s/namespaces/%s/%s", api, ns ? ns : c->ns, k->names[0]);
}

char *
client_qualified (const client_kind *k, bool plural)
{
        const char *n = plural ? k->names[0] : k->names[1];
        return *k->group ? kiln_strdup_printf ("%s.%s", n, k->group) : kiln_strdup (n);
}

void
client_init (client *c, const kiln_command *cmd, kiln_global *g)
{
        memset (c, 0, sizeof (*c));
        c->cmd = cmd;
        c->g = g;
        c->ns = "default";
}

void
client_clear (client *c)
{
        kiln_api_client_free (c->api);
        c->api = NULL;
}

int
client_opt (client *c, int opt, const char *arg)
{
        switch (opt) {
        case CLIENT_OPT_SERVER:
                c->server = arg;
                return 1;
        case CLIENT_OPT_TOKEN:
                c->token = arg;
                return 1;
        case CLIENT_OPT_TOKEN_FILE:
                c->token_file = arg;
                return 1;
        case CLIENT_OPT_CACERT:
                c->cacert = arg;
                return 1;
        case 'n':
                c->ns = arg;
                return 1;
        default:
                return 0;
        }
}

int
client_connect (client *c, kiln_error **err)
{
        cleanup_free char *file_token = NULL;
        const char *server = c->server ? c->server : getenv ("KILN_SERVER");
        const char *token = c->token;
        size_t len;

        if (!kiln_name_is_valid (c->ns))
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "namespace `%s` is not a valid name", c->ns);
        if (token == NULL && c->token_file) {
                if (kiln_read_file (&file_token, &len, c->token_file, TOKEN_MAX, err) < 0)
                        return kiln_error_wrap (err, "token file");
                file_token[strcspn (file_token, "\r\n")] = '\0';
                token = file_token;
        }
        if (token == NULL)
                token = getenv ("KILN_TOKEN");
        kiln_api_client_opts o = { .server = server && *server ? server : "http://127.0.0.1:8080",
                                   .token = token,
                                   .cacert = c->cacert };
        return kiln_api_client_new (&c->api, &o, err);
}

int
client_call (client *c, kiln_api_call *call, kiln_error **err)
{
        return kiln_api_client_send (c->api, call, err);
}

int
client_status_error (const kiln_api_call *call, kiln_error **err)
{
        json_t *j = call->answer ? json_loads (call->answer, 0, NULL) : NULL;
        const char *msg = json_string_value (json_object_get (j, "message"));
        int code = call->status == 404   ? KILN_E_NOT_FOUND
                   : call->status == 401 ? KILN_E_AUTH
                   : call->status == 409 ? KILN_E_CONFLICT
                   : call->status == 413 ? KILN_E_TOO_LARGE
                                         : KILN_E_FAILED;

        if (msg && *msg)
                kiln_error_makec (err, code, 0, "%s", msg);
        else
                kiln_error_makec (err, code, 0, "the server answered HTTP %ld", call->status);
        json_decref (j);
        return -1;
}

static int
parse_answer (const kiln_api_call *call, json_t **out, kiln_error **err)
{
        json_error_t je;

        *out = json_loads (call->answer ? call->answer : "", 0, &je);
        if (*out == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "the server's answer is not JSON: %s", je.text);
        return 0;
}

int
client_get_json (client *c, const char *path, json_t **out, kiln_error **err)
{
        kiln_api_call call = { .method = "GET", .path = path };
        int r;

        if (client_call (c, &call, err) < 0)
                return -1;
        r = call.status == 200 ? parse_answer (&call, out, err) : client_status_error (&call, err);
        kiln_api_call_clear (&call);
        return r;
}

int
client_send_json (client *c, const char *method, const char *path, const char *content_type,
                  const json_t *body, json_t **out, kiln_error **err)
{
        cleanup_free char *data = json_dumps (body, JSON_COMPACT);
        kiln_api_call call = { .method = method,
                               .path = path,
                               .content_type = content_type ? content_type : "application/json",
                               .body = data,
                               .body_len = strlen (data) };
        int r = 0;

        if (client_call (c, &call, err) < 0)
                return -1;
        if (call.status != 200 && call.status != 201)
                r = client_status_error (&call, err);
        else if (out)
                r = parse_answer (&call, out, err);
        kiln_api_call_clear (&call);
        return r;
}

int
client_fail (const client *c, kiln_error *e)
{
        fprintf (stderr, "kiln %s: %s\n", c->cmd->name, kiln_error_msg (e));
        kiln_error_free (e);
        return KILN_EXIT_FAILURE;
}

int
client_failf (const client *c, const char *fmt, ...)
{
        va_list ap;

        fprintf (stderr, "kiln %s: ", c->cmd->name);
        va_start (ap, fmt);
        vfprintf (stderr, fmt, ap);
        va_end (ap);
        fputc ('\n', stderr);
        return KILN_EXIT_FAILURE;
}

/* Parses the options every client command shares plus `shorts`; other
 * options go to take (may be NULL).  Returns optind, or -1 after a usage
 * message. */
int
parse_common (client *c, int argc, char **argv, const char *shorts, const struct option *extra,
              int (*take) (void *data, int opt, const char *arg), void *data)
{
        struct option longopts[32];
        static const struct option common[] = { KILN_GLOBAL_LONGOPTS, CLIENT_LONGOPTS };
        size_t n = 0;
        cleanup_free char *sh = kiln_strdup_printf ("qhn:%s", shorts ? shorts : "");
        int opt;

        for (size_t i = 0; i < KILN_N_ELEMENTS (common); i++)
                longopts[n++] = common[i];
        for (size_t i = 0; extra && extra[i].name && n < KILN_N_ELEMENTS (longopts) - 1; i++)
                longopts[n++] = extra[i];
        memset (&longopts[n], 0, sizeof (longopts[n]));
        optind = 1;
        while ((opt = getopt_long (argc, argv, sh, longopts, NULL)) != -1) {
                int r = kiln_cli_global_opt (c->g, c->cmd, opt, optarg);
                if (r == 0)
                        r = client_opt (c, opt, optarg);
                if (r == 0 && take)
                        r = take (data, opt, optarg);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        kiln_cli_usage_error (c->cmd, "unknown option");
                        return -1;
                }
        }
        return optind;
}

/* ---- output ---- */

/* kubectl's duration.HumanDuration. */
static void
human_age (char *buf, size_t size, int64_t s)
{
        int64_t m = s / 60, h = s / 3600, d = h / 24;

        if (s < 0)
                snprintf (buf, size, "0s");
        else if (s < 120)
                snprintf (buf, size, "%llds", (long long) s);
        else if (m < 10)
                snprintf (buf, size, s % 60 ? "%lldm%llds" : "%lldm", (long long) m,
                          (long long) (s % 60));
        else if (m < 180)
                snprintf (buf, size, "%lldm", (long long) m);
        else if (h < 8)
                snprintf (buf, size, m % 60 ? "%lldh%lldm" : "%lldh", (long long) h,
                          (long long) (m % 60));
        else if (h < 48)
                snprintf (buf, size, "%lldh", (long long) h);
        else if (h < 24 * 8)
                snprintf (buf, size, h % 24 ? "%lldd%lldh" : "%lldd", (long long) d,
                          (long long) (h % 24));
        else if (d < 365 * 2)
                snprintf (buf, size, "%lldd", (long long) d);
        else if (d < 365 * 8)
                snprintf (buf, size, d % 365 ? "%lldy%lldd" : "%lldy", (long long) (d / 365),
                          (long long) (d % 365));
        else
                snprintf (buf, size, "%lldy", (long long) (d / 365));
}

/* An RFC 3339 UTC time as an age; "" when absent. */
static char *
age_of (const char *ts)
{
        struct tm tm = { 0 };
        char buf[32];
        const char *end;

        if (ts == NULL || *ts == '\0')
                return kiln_strdup ("");
        end = strptime (ts, "%Y-%m-%dT%H:%M:%S", &tm);
        if (end == NULL)
                return kiln_strdup (ts);
        human_age (buf, sizeof buf, (int64_t) (time (NULL) - timegm (&tm)));
        return kiln_strdup (buf);
}

static const char *
str_at (const json_t *o, const char *a, const char *b)
{
        const json_t *v = json_object_get (o, a);
        if (b)
                v = json_object_get (v, b);
        return json_string_value (v);
}

static const json_t *
succeeded_condition (const json_t *br)
{
        const json_t *conds = json_object_get (json_object_get (br, "status"), "conditions");
        size_t i;
        json_t *cond;

        json_array_foreach (conds, i, cond)
        {
                const char *t = json_string_value (json_object_get (cond, "type"));
                if (t && strcmp (t, "Succeeded") == 0)
                        return cond;
        }
        return NULL;
}

#define MAX_COLS 6

typedef struct row {
        char *cell[MAX_COLS];
} row;

static size_t
columns (const client_kind *k, const char **head)
{
        static const char *br[] = { "NAME", "SUCCEEDED", "REASON", "STARTTIME", "COMPLETIONTIME" };
        static const char *b[]
            = { "NAME",        "REGISTERED", "REASON", "BUILDSTRATEGYKIND", "BUILDSTRATEGYNAME",
                "CREATIONTIME" };
        static const char *secret[] = { "NAME", "TYPE", "AGE" };
        static const char *other[] = { "NAME", "AGE" };
        const char **src = other;
        size_t n = KILN_N_ELEMENTS (other);

        if (strcmp (k->kind, "BuildRun") == 0)
                src = br, n = KILN_N_ELEMENTS (br);
        else if (strcmp (k->kind, "Build") == 0)
                src = b, n = KILN_N_ELEMENTS (b);
        else if (strcmp (k->kind, "Secret") == 0)
                src = secret, n = KILN_N_ELEMENTS (secret);
        for (size_t i = 0; i < n; i++)
                head[i] = src[i];
        return n;
}

static void
make_row (row *r, const client_kind *k, const json_t *o)
{
        const char *name = str_at (o, "metadata", "name");
        const char *created = str_at (o, "metadata", "creationTimestamp");
        size_t i = 0;

        memset (r, 0, sizeof (*r));
        r->cell[i++] = kiln_strdup (name ? name : "");
        if (strcmp (k->kind, "BuildRun") == 0) {
                const json_t *cond = succeeded_condition (o);
                r->cell[i++] = kiln_strdup (str_at (cond, "status", NULL) ?: "");
                r->cell[i++] = kiln_strdup (str_at (cond, "reason", NULL) ?: "");
                r->cell[i++] = age_of (str_at (o, "status", "startTime"));
                r->cell[i++] = age_of (str_at (o, "status", "completionTime"));
        } else if (strcmp (k->kind, "Build") == 0) {
                const json_t *spec = json_object_get (o, "spec");
                r->cell[i++] = kiln_strdup (str_at (o, "status", "registered") ?: "");
                r->cell[i++] = kiln_strdup (str_at (o, "status", "reason") ?: "");
                r->cell[i++] = kiln_strdup (str_at (spec, "strategy", "kind") ?: "");
                r->cell[i++] = kiln_strdup (str_at (spec, "strategy", "name") ?: "");
                r->cell[i++] = age_of (created);
        } else if (strcmp (k->kind, "Secret") == 0) {
                r->cell[i++] = kiln_strdup (str_at (o, "type", NULL) ?: "Opaque");
                r->cell[i++] = age_of (created);
        } else {
                r->cell[i++] = age_of (created);
        }
}

static void
row_clear (row *r)
{
        for (size_t i = 0; i < MAX_COLS; i++)
                free (r->cell[i]);
}

static void
print_cell (const char *s, size_t width, bool last)
{
        if (last)
                printf ("%s\n", s);
        else
                printf ("%-*s   ", (int) width, s);
}

/* Columns three spaces apart, as kubectl's tab writer sets them. */
static void
print_table (const client_kind *k, const json_t *items, bool header)
{
        const char *head[MAX_COLS];
        size_t n = columns (k, head), width[MAX_COLS] = { 0 }, count = json_array_size (items);
        row *rows = kiln_calloc (count ? count : 1, sizeof (*rows));

        for (size_t c = 0; c < n; c++)
                width[c] = header ? strlen (head[c]) : 0;
        for (size_t i = 0; i < count; i++) {
                make_row (&rows[i], k, json_array_get (items, i));
                for (size_t c = 0; c < n; c++)
                        if (strlen (rows[i].cell[c]) > width[c])
                                width[c] = strlen (rows[i].cell[c]);
        }
        if (header)
                for (size_t c = 0; c < n; c++)
                        print_cell (head[c], width[c], c + 1 == n);
        for (size_t i = 0; i < count; i++) {
                for (size_t c = 0; c < n; c++)
                        print_cell (rows[i].cell[c], width[c], c + 1 == n);
                row_clear (&rows[i]);
        }
        free (rows);
        fflush (stdout);
}

/* ---- YAML output ---- */

static bool
plain_ok (const char *s)
{
        static const char *const words[]
            = { "true", "false", "null", "yes", "no", "on", "off", "~", "y", "n" };
        char *end;

        if (*s == '\0' || strchr ("-?:,[]{}#&*!|>'\"%@` ", *s) || s[strlen (s) - 1] == ' ')
                return false;
        for (size_t i = 0; i < KILN_N_ELEMENTS (words); i++)
                if (strcasecmp (s, words[i]) == 0)
                        return false;
        strtod (s, &end);
        if (*end == '\0')
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f || (*p == ':' && (p[1] == ' ' || p[1] == '\0'))
                    || (*p == '#' && p > (const unsigned char *) s && p[-1] == ' '))
                        return false;
        return true;
}

static void
yaml_scalar (FILE *f, const json_t *v)
{
        if (json_is_string (v)) {
                const char *s = json_string_value (v);
                if (plain_ok (s)) {
                        fputs (s, f);
                } else {
                        char *q = json_dumps (v, JSON_ENCODE_ANY);
                        fputs (q, f);
                        free (q);
                }
                return;
        }
        char *d = json_dumps (v, JSON_ENCODE_ANY | JSON_COMPACT);
        fputs (d, f);
        free (d);
}

static bool
is_empty_coll (const json_t *v)
{
        return (json_is_object (v) && json_object_size (v) == 0)
               || (json_is_array (v) && json_array_size (v) == 0);
}

static void yaml_value (FILE *f, const json_t *v, int indent);

static int
cmp_str (const void *a, const void *b)
{
        return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
yaml_object (FILE *f, const json_t *o, int indent, bool first_inline)
{
        const char **keys = kiln_calloc (json_object_size (o) + 1, sizeof (*keys));
        size_t n = 0;
        const char *k;
        json_t *v;

        json_object_foreach ((json_t *) o, k, v) keys[n++] = k;
        qsort (keys, n, sizeof (*keys), cmp_str);
        for (size_t i = 0; i < n; i++) {
                v = json_object_get (o, keys[i]);
                if (!(i == 0 && first_inline))
                        fprintf (f, "%*s", indent, "");
                if (plain_ok (keys[i]))
                        fputs (keys[i], f);
                else
                        yaml_scalar (f,
                                     json_object_get (o, keys[i]) ? json_string (keys[i]) : NULL);
                fputc (':', f);
                if ((json_is_object (v) || json_is_array (v)) && !is_empty_coll (v)) {
                        fputc ('\n', f);
                        yaml_value (f, v, json_is_array (v) ? indent : indent + 2);
                } else {
                        fputc (' ', f);
                        yaml_scalar (f, v);
                        fputc ('\n', f);
                }
        }
        free (keys);
}

static void
yaml_value (FILE *f, const json_t *v, int indent)
{
        size_t i;
        json_t *item;

        if (json_is_object (v)) {
                yaml_object (f, v, indent, false);
                return;
        }
        json_array_foreach (v, i, item)
        {
                fprintf (f, "%*s- ", indent, "");
                if (json_is_object (item) && !is_empty_coll (item))
                        yaml_object (f, item, indent + 2, true);
                else if (json_is_array (item) && !is_empty_coll (item)) {
                        fputc ('\n', f);
                        yaml_value (f, item, indent + 2);
                } else {
                        yaml_scalar (f, item);
                        fputc ('\n', f);
                }
        }
}

static void
print_object (const client_kind *k, const json_t *o, const char *format)
{
        if (strcmp (format, "json") == 0) {
                char *s = json_dumps (o, JSON_INDENT (4) | JSON_SORT_KEYS);
                printf ("%s\n", s);
                free (s);
        } else if (strcmp (format, "yaml") == 0) {
                yaml_value (stdout, o, 0);
        } else {
                cleanup_free char *q = client_qualified (k, false);
                printf ("%s/%s\n", q, str_at (o, "metadata", "name") ?: "");
        }
        fflush (stdout);
}

/* ---- kiln get ---- */

typedef struct get_opts {
        const char *output;
        const char *selector;
        bool watch;
} get_opts;

static int
get_take (void *data, int opt, const char *arg)
{
        get_opts *o = data;

        switch (opt) {
        case 'o':
                o->output = arg;
                return 1;
        case 'l':
                o->selector = arg;
                return 1;
        case 'w':
                o->watch = true;
                return 1;
        default:
                return 0;
        }
}

static char *
url_encode (const char *s)
{
        kiln_buf b = KILN_BUF_INIT;
        size_t len;

        kiln_buf_puts (&b, "", NULL);
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
                    || strchr ("-._~", *p))
                        kiln_buf_append (&b, p, 1, NULL);
                else
                        kiln_buf_printf (&b, NULL, "%%%02X", *p);
        }
        return kiln_buf_steal (&b, &len);
}

typedef struct watch_state {
        const client_kind *k;
        const char *format;
        kiln_buf line;
        bool header;
        bool failed;
        char *error;
} watch_state;

static void
watch_event (watch_state *w, const char *line)
{
        json_t *ev = json_loads (line, 0, NULL);
        const char *type = str_at (ev, "type", NULL);
        const json_t *obj = json_object_get (ev, "object");

        if (type && strcmp (type, "ERROR") == 0) {
                free (w->error);
                w->error = kiln_strdup (str_at (obj, "message", NULL) ?: "the watch failed");
        } else if (json_is_object (obj)) {
                if (w->format) {
                        print_object (w->k, obj, w->format);
                } else {
                        json_t *one = json_array ();
                        json_array_append (one, (json_t *) obj);
                        print_table (w->k, one, !w->header);
                        w->header = true;
                        json_decref (one);
                }
        }
        json_decref (ev);
}

static int
watch_chunk (void *data, const char *buf, size_t len)
{
        watch_state *w = data;

        for (size_t i = 0; i < len; i++) {
                if (buf[i] != '\n') {
                        if (kiln_buf_append (&w->line, &buf[i], 1, NULL) < 0)
                                return -1;
                        continue;
                }
                kiln_buf_puts (&w->line, "", NULL);
                if (w->line.len)
                        watch_event (w, w->line.data);
                kiln_buf_reset (&w->line);
        }
        return 0;
}

static int
get_watch (client *c, const client_kind *k, const char *name, const get_opts *o, kiln_error **err)
{
        cleanup_free char *coll = client_collection (c, k, NULL);
        cleanup_free char *sel = o->selector ? url_encode (o->selector) : NULL;
        cleanup_free char *path = kiln_strdup_printf (
            "%s?watch=true%s%s%s%s", coll, name ? "&fieldSelector=metadata.name%3D" : "",
            name ? name : "", sel ? "&labelSelector=" : "", sel ? sel : "");
        watch_state w = { .k = k, .format = o->output };
        kiln_api_call call
            = { .method = "GET", .path = path, .on_chunk = watch_chunk, .chunk_data = &w };
        int r = 0;

        kiln_buf_init (&w.line, (size_t) 64 << 20);
        if (client_call (c, &call, err) < 0)
                r = -1;
        else if (call.status != 200)
                r = client_status_error (&call, err);
        else if (w.error)
                r = kiln_error_makec (err, KILN_E_FAILED, 0, "%s", w.error);
        kiln_api_call_clear (&call);
        kiln_buf_free (&w.line);
        free (w.error);
        return r;
}

static int
unknown_kind (const char *name, kiln_error **err)
{
        return kiln_error_makec (err, KILN_E_INVALID, 0,
                                 "the server doesn't have a resource type \"%s\" (want builds, "
                                 "buildruns, buildstrategies, clusterbuildstrategies or secrets)",
                                 name);
}

static int
get (client *c, const get_opts *o, int argc, char **argv, kiln_error **err)
{
        const client_kind *k;
        const char *name = argc > 1 ? argv[1] : NULL;
        cleanup_free char *coll = NULL;
        cleanup_free char *path = NULL;
        cleanup_free char *sel = NULL;
        json_t *got = NULL;

        if (argc < 1)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "a KIND is required (builds, buildruns, ...)");
        if (argc > 2)
                return kiln_error_makec (err, KILN_E_INVALID, 0, "one NAME at most");
        if ((k = client_find_kind (argv[0])) == NULL)
                return unknown_kind (argv[0], err);
        if (o->output && strcmp (o->output, "json") != 0 && strcmp (o->output, "yaml") != 0
            && strcmp (o->output, "name") != 0)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "output format `%s`: want json, yaml or name", o->output);
        if (client_connect (c, err) < 0)
                return -1;
        if (o->watch)
                return get_watch (c, k, name, o, err);
        coll = client_collection (c, k, NULL);
        sel = o->selector ? url_encode (o->selector) : NULL;
        path = name ? kiln_strdup_printf ("%s/%s", coll, name)
                    : kiln_strdup_printf ("%s%s%s", coll, sel ? "?labelSelector=" : "",
                                          sel ? sel : "");
        if (client_get_json (c, path, &got, err) < 0)
                return -1;
        if (o->output && (name || strcmp (o->output, "name") != 0)) {
                print_object (k, got, o->output);
        } else if (name) {
                json_t *one = json_array ();
                json_array_append (one, got);
                print_table (k, one, true);
                json_decref (one);
        } else if (o->output) {
                size_t i;
                json_t *item;
                json_array_foreach (json_object_get (got, "items"), i, item)
                    print_object (k, item, o->output);
        } else if (json_array_size (json_object_get (got, "items")) == 0) {
                if (k->namespaced)
                        fprintf (stderr, "No resources found in %s namespace.\n", c->ns);
                else
                        fprintf (stderr, "No resources found\n");
        } else {
                print_table (k, json_object_get (got, "items"), true);
        }
        json_decref (got);
        return 0;
}

static int
run_get (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "output", required_argument, NULL, 'o' },
                { "selector", required_argument, NULL, 'l' },
                { "watch", no_argument, NULL, 'w' },
                { NULL, 0, NULL, 0 },
        };
        client c;
        get_opts o = { 0 };
        kiln_error *err = NULL;
        int i, r;

        client_init (&c, &kiln_cmd_get, g);
        if ((i = parse_common (&c, argc, argv, "o:l:w", extra, get_take, &o)) < 0)
                return KILN_EXIT_USAGE;
        r = get (&c, &o, argc - i, argv + i, &err);
        client_clear (&c);
        return r < 0 ? client_fail (&c, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_get = {
        "get",
        run_get,
        "list or show Builds, BuildRuns, strategies on a kiln serve",
        "Usage: kiln get KIND [NAME] [-o json|yaml|name] [-l SELECTOR] [-w]\n\n"
        "Lists the objects of KIND in the namespace (or shows one) as a table:\n"
        "buildruns: NAME SUCCEEDED REASON STARTTIME COMPLETIONTIME; builds: NAME\n"
        "REGISTERED REASON BUILDSTRATEGYKIND BUILDSTRATEGYNAME CREATIONTIME; times\n"
        "are ages (5s, 3m) as kubectl prints them.  KIND is builds (build),\n"
        "buildruns (buildrun, br), buildstrategies (bs), clusterbuildstrategies\n"
        "(cbs) or secrets.\n\n"
        "Options:\n"
        "  -o, --output F        json, yaml or name instead of the table\n"
        "  -l, --selector SEL    a label selector (a=b,c!=d,e)\n"
        "  -w, --watch           print the objects, then every change as it happens\n\n" CLIENT_HELP
            KILN_GLOBAL_HELP,
};

/* ---- kiln apply ---- */

static int
read_input (char **out, size_t *len, const char *file, kiln_error **err)
{
        kiln_buf b;
        char chunk[65536];
        ssize_t n;

        if (strcmp (file, "-") != 0)
                return kiln_read_file (out, len, file, FILE_MAX, err);
        kiln_buf_init (&b, FILE_MAX);
        while ((n = read (0, chunk, sizeof chunk)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || kiln_buf_append (&b, chunk, (size_t) n, err) < 0) {
                        kiln_buf_free (&b);
                        return n < 0 ? kiln_error_makec (err, KILN_E_IO, errno, "read stdin") : -1;
                }
        }
        kiln_buf_puts (&b, "", NULL);
        *out = kiln_buf_steal (&b, len);
        return 0;
}

/* The documents of a file: JSON (an object, or a List's items) or YAML. */
static int
load_documents (json_t **out, const char *file, kiln_error **err)
{
        cleanup_free char *data = NULL;
        size_t len;
        const char *p;
        json_t *docs = NULL;

        if (read_input (&data, &len, file, err) < 0)
                return -1;
        for (p = data; *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'; p++)
                ;
        if (*p == '{' || *p == '[') {
                json_error_t je;
                json_t *j = json_loads (data, 0, &je);
                if (j == NULL)
                        return kiln_error_makec (err, KILN_E_INVALID, 0, "%s:%d:%d: %s", file,
                                                 je.line, je.column, je.text);
                docs = json_array ();
                if (json_is_array (j))
                        json_array_extend (docs, j);
                else
                        json_array_append (docs, j);
                json_decref (j);
        } else if (kiln_yaml_parse (&docs, data, len, err) < 0) {
                return kiln_error_wrap (err, "%s", file);
        }
        /* A List's items are documents of their own. */
        *out = json_array ();
        size_t i;
        json_t *d;
        json_array_foreach (docs, i, d)
        {
                const char *kind = str_at (d, "kind", NULL);
                if (kind && kiln_str_has_suffix (kind, "List")
                    && json_is_array (json_object_get (d, "items")))
                        json_array_extend (*out, json_object_get (d, "items"));
                else if (!json_is_null (d))
                        json_array_append (*out, d);
        }
        json_decref (docs);
        return 0;
}

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

static json_t *
annotations_of (json_t *obj)
{
        json_t *m = json_object_get (obj, "metadata");
        json_t *a;

        if (!json_is_object (m)) {
                m = json_object ();
                json_object_set_new (obj, "metadata", m);
        }
        a = json_object_get (m, "annotations");
        if (!json_is_object (a)) {
                a = json_object ();
                json_object_set_new (m, "annotations", a);
        }
        return a;
}

static int
apply_one (client *c, json_t *doc, size_t index, kiln_error **err)
{
        const char *kind = str_at (doc, "kind", NULL);
        const char *name = str_at (doc, "metadata", "name");
        const char *ns = str_at (doc, "metadata", "namespace");
        const client_kind *k = client_kind_of (kind);
        cleanup_free char *coll = NULL;
        cleanup_free char *path = NULL;
        cleanup_free char *q = NULL;
        cleanup_free char *applied = NULL;
        json_t *old = NULL;
        kiln_error *e = NULL;
        const char *verb;
        int r;

        if (!json_is_object (doc))
                return kiln_error_makec (err, KILN_E_INVALID, 0, "document %zu is not an object",
                                         index + 1);
        if (k == NULL)
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "document %zu: kind `%s` is not one kiln serves (Build, "
                                         "BuildRun, BuildStrategy, ClusterBuildStrategy, Secret)",
                                         index + 1, kind ? kind : "");
        if (name == NULL || *name == '\0')
                return kiln_error_makec (err, KILN_E_INVALID, 0,
                                         "document %zu (%s): metadata.name is required", index + 1,
                                         kind);
        coll = client_collection (c, k, ns);
        path = kiln_strdup_printf ("%s/%s", coll, name);
        q = client_qualified (k, false);
        /* What was applied, as kubectl keeps it, tells configured from
         * unchanged (Secret values never come back to compare). */
        json_object_del (annotations_of (doc), LAST_APPLIED);
        if (json_object_size (annotations_of (doc)) == 0)
                json_object_del (json_object_get (doc, "metadata"), "annotations");
        applied = json_dumps (doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_object_set_new (annotations_of (doc), LAST_APPLIED, json_string (applied));
        r = client_get_json (c, path, &old, &e);
        if (r < 0 && e->code != KILN_E_NOT_FOUND) {
                if (*err == NULL)
                        *err = e;
                else
                        kiln_error_free (e);
                return -1;
        }
        kiln_error_free (e);
        if (r < 0) {
                r = client_send_json (c, "POST", coll, NULL, doc, NULL, err);
                verb = "created";
        } else {
                const char *before = json_string_value (json_object_get (
                    json_object_get (json_object_get (old, "metadata"), "annotations"),
                    LAST_APPLIED));
                if (before && strcmp (before, applied) == 0) {
                        verb = "unchanged";
                        r = 0;
                } else {
                        const char *rv = str_at (old, "metadata", "resourceVersion");
                        json_object_set_new (json_object_get (doc, "metadata"), "resourceVersion",
                                             json_string (rv ? rv : ""));
                        r = client_send_json (c, "PUT", path, NULL, doc, NULL, err);
                        verb = "configured";
                }
                json_decref (old);
        }
        if (r < 0)
                return kiln_error_wrap (err, "%s \"%s\"", q, name);
        printf ("%s/%s %s\n", q, name, verb);
        fflush (stdout);
        return 0;
}

static int
apply (client *c, const char *file, kiln_error **err)
{
        json_t *docs = NULL;
        size_t i;
        json_t *d;
        int r = 0;

        if (load_documents (&docs, file, err) < 0)
                return -1;
        if (json_array_size (docs) == 0) {
                json_decref (docs);
                return kiln_error_makec (err, KILN_E_INVALID, 0, "%s holds no objects", file);
        }
        if (client_connect (c, err) < 0) {
                json_decref (docs);
                return -1;
        }
        json_array_foreach (docs, i, d)
        {
                if (apply_one (c, d, i, err) < 0) {
                        r = -1;
                        break;
                }
        }
        json_decref (docs);
        return r;
}

static int
apply_take (void *data, int opt, const char *arg)
{
        if (opt != 'f')
                return 0;
        *(const char **) data = arg;
        return 1;
}

static int
run_apply (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "filename", required_argument, NULL, 'f' },
                { NULL, 0, NULL, 0 },
        };
        client c;
        const char *file = NULL;
        kiln_error *err = NULL;
        int i, r;

        client_init (&c, &kiln_cmd_apply, g);
        if ((i = parse_common (&c, argc, argv, "f:", extra, apply_take, &file)) < 0)
                return KILN_EXIT_USAGE;
        if (file == NULL)
                return client_failf (&c, "-f FILE (or -f - for stdin) is required");
        if (i < argc)
                return client_failf (&c, "unexpected argument `%s`", argv[i]);
        r = apply (&c, file, &err);
        client_clear (&c);
        return r < 0 ? client_fail (&c, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_apply = {
        "apply",
        run_apply,
        "create or update objects on a kiln serve from YAML or JSON",
        "Usage: kiln apply -f FILE|-\n\n"
        "Creates each object in FILE (YAML with one or more documents, or JSON; a\n"
        "List's items count one by one), or updates it when it exists.  Kinds:\n"
        "Build, BuildRun, BuildStrategy, ClusterBuildStrategy, Secret.  Prints\n"
        "`build.shipwright.io/NAME created`, `configured` or `unchanged` (what was\n"
        "applied is kept in the kubectl.kubernetes.io/last-applied-configuration\n"
        "annotation, as kubectl does).  metadata.namespace, when set, wins over -n.\n\n"
        "Options:\n"
        "  -f, --filename F      the file, or - for stdin\n\n" CLIENT_HELP KILN_GLOBAL_HELP,
};

/* ---- kiln delete ---- */

static int
run_delete (kiln_global *g, int argc, char **argv)
{
        client c;
        kiln_error *err = NULL;
        const client_kind *k;
        int i, failed = 0;

        client_init (&c, &kiln_cmd_delete, g);
        if ((i = parse_common (&c, argc, argv, "", NULL, NULL, NULL)) < 0)
                return KILN_EXIT_USAGE;
        if (i >= argc)
                return client_failf (&c, "a KIND and a NAME are required");
        if ((k = client_find_kind (argv[i])) == NULL) {
                unknown_kind (argv[i], &err);
                return client_fail (&c, err);
        }
        if (i + 1 >= argc)
                return client_failf (&c, "a NAME is required after %s", argv[i]);
        if (client_connect (&c, &err) < 0)
                return client_fail (&c, err);
        cleanup_free char *coll = client_collection (&c, k, NULL);
        cleanup_free char *q = client_qualified (k, false);
        for (int a = i + 1; a < argc; a++) {
                cleanup_free char *path = kiln_strdup_printf ("%s/%s", coll, argv[a]);
                kiln_api_call call = { .method = "DELETE", .path = path };
                if (client_call (&c, &call, &err) == 0 && call.status == 200)
                        printf ("%s \"%s\" deleted\n", q, argv[a]);
                else {
                        if (err == NULL)
                                client_status_error (&call, &err);
                        client_fail (&c, err);
                        err = NULL;
                        failed = 1;
                }
                kiln_api_call_clear (&call);
        }
        client_clear (&c);
        return failed ? KILN_EXIT_FAILURE : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_delete = {
        "delete",
        run_delete,
        "delete objects on a kiln serve",
        "Usage: kiln delete KIND NAME...\n\n"
        "Deletes each named object.  Deleting a running BuildRun stops it.\n\n" CLIENT_HELP
            KILN_GLOBAL_HELP,
};

/* ---- kiln logs ---- */

static int
log_chunk (void *data, const char *buf, size_t len)
{
        (void) data;
        if (fwrite (buf, 1, len, stdout) != len)
                return -1;
        fflush (stdout);
        return 0;
}

int
client_logs (client *c, const char *name, bool follow, kiln_error **err)
{
        const client_kind *k = client_kind_of ("BuildRun");
        cleanup_free char *coll = client_collection (c, k, NULL);
        cleanup_free char *path
            = kiln_strdup_printf ("%s/%s/log%s", coll, name, follow ? "?follow=true" : "");
        cleanup_free char *br_path = kiln_strdup_printf ("%s/%s", coll, name);
        kiln_api_call call = { .method = "GET", .path = path };
        json_t *br = NULL;
        int r = 0;

        /* The run first: a missing one is a clean error, not a log. */
        if (client_get_json (c, br_path, &br, err) < 0)
                return -1;
        json_decref (br);
        call.on_chunk = log_chunk;
        if (client_call (c, &call, err) < 0)
                return -1;
        if (call.status != 200)
                r = client_status_error (&call, err);
        kiln_api_call_clear (&call);
        return r;
}

static int
logs_take (void *data, int opt, const char *arg)
{
        (void) arg;
        if (opt != 'f')
                return 0;
        *(bool *) data = true;
        return 1;
}

static int
run_logs (kiln_global *g, int argc, char **argv)
{
        static const struct option extra[] = {
                { "follow", no_argument, NULL, 'f' },
                { NULL, 0, NULL, 0 },
        };
        client c;
        bool follow = false;
        kiln_error *err = NULL;
        int i, r;

        client_init (&c, &kiln_cmd_logs, g);
        if ((i = parse_common (&c, argc, argv, "f", extra, logs_take, &follow)) < 0)
                return KILN_EXIT_USAGE;
        if (i >= argc)
                return client_failf (&c, "a BUILDRUN is required");
        if (client_connect (&c, &err) < 0)
                return client_fail (&c, err);
        r = client_logs (&c, argv[i], follow, &err);
        client_clear (&c);
        return r < 0 ? client_fail (&c, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_logs = {
        "logs",
        run_logs,
        "print a BuildRun's log",
        "Usage: kiln logs BUILDRUN [-f]\n\n"
        "Prints the BuildRun's log: each line prefixed with its step, and a last\n"
        "`[kiln] REASON: MESSAGE` line.\n\n"
        "Options:\n"
        "  -f, --follow          stream the log until the run ends\n\n" CLIENT_HELP
            KILN_GLOBAL_HELP,
};

/* ---- kiln cancel ---- */

static int
cancel (client *c, const char *name, kiln_error **err)
{
        const client_kind *k = client_kind_of ("BuildRun");
        cleanup_free char *coll = client_collection (c, k, NULL);
        cleanup_free char *path = kiln_strdup_printf ("%s/%s", coll, name);
        json_t *br = NULL;
        json_t *patch;
        int r;

        if (client_get_json (c, path, &br, err) < 0)
                return -1;
        if (kiln_buildrun_is_done (br)) {
                const char *reason = str_at (succeeded_condition (br), "reason", NULL);
                r = kiln_error_makec (err, KILN_E_CONFLICT, 0,
                                      "buildrun \"%s\" has already finished (%s): nothing to "
                                      "cancel",
                                      name, reason ? reason : "done");
                json_decref (br);
                return r;
        }
        json_decref (br);
        patch = json_pack ("[{s:s,s:s,s:s}]", "op", "add", "path", "/spec/state", "value",
                           "BuildRunCanceled");
        r = client_send_json (c, "PATCH", path, "application/json-patch+json", patch, NULL, err);
        json_decref (patch);
        if (r == 0)
                printf ("BuildRun \"%s\" has been canceled.\n", name);
        return r;
}

static int
run_cancel (kiln_global *g, int argc, char **argv)
{
        client c;
        kiln_error *err = NULL;
        int i, r;

        client_init (&c, &kiln_cmd_cancel, g);
        if ((i = parse_common (&c, argc, argv, "", NULL, NULL, NULL)) < 0)
                return KILN_EXIT_USAGE;
        if (i >= argc)
                return client_failf (&c, "a BUILDRUN is required");
        if (client_connect (&c, &err) < 0)
                return client_fail (&c, err);
        r = cancel (&c, argv[i], &err);
        client_clear (&c);
        return r < 0 ? client_fail (&c, err) : KILN_EXIT_OK;
}

const kiln_command kiln_cmd_cancel = {
        "cancel",
        run_cancel,
        "cancel a BuildRun",
        "Usage: kiln cancel BUILDRUN\n\n"
        "Cancels the BuildRun as `shp buildrun cancel` does (a JSON patch setting\n"
        "spec.state to BuildRunCanceled); refuses a run that has already\n"
        "finished.\n\n" CLIENT_HELP KILN_GLOBAL_HELP,
};
