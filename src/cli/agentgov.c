/*
 * agentgov: the command-line companion of the nginx module. It links the same
 * engine (src/core) as the module, so `policy eval` decides a call exactly as
 * the gateway's rule step does.
 *
 *   agentgov policy check FILE [--strict]
 *   agentgov policy eval FILE CALL.json [--trace] [--bench N]
 *   agentgov policy test FILE CASES.json
 *   agentgov token --key KEY.pem --iss ISS --sub SUB [...]
 *   agentgov keygen --out KEY.pem [--type ed25519|p256|rsa] [...]
 *   agentgov audit verify FILE... --key KEYFILE [--jwks JWKS]
 *   agentgov audit show FILE [--agent A] [--task T] [...] [--json]
 *   agentgov version | help
 *
 * Exit codes: 0 success, 1 a check or a test failed (or a policy did not load,
 * or an audit chain is broken), 2 usage, I/O or malformed input.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <jansson.h>

#include "ag_audit.h"
#include "ag_call.h"
#include "ag_json.h"
#include "ag_jwt.h"
#include "ag_util.h"
#include "ag_policy.h"

#ifndef AGENTGOV_VERSION
#define AGENTGOV_VERSION  "0.1.0"
#endif

#define AG_CLI_OK         0
#define AG_CLI_FAIL       1
#define AG_CLI_USAGE      2

#define AG_CLI_ERRLEN     512
#define AG_CLI_FILE_MAX   (64 * 1024 * 1024)
#define AG_CLI_BENCH_MAX  1000000000L


typedef struct {
    ag_call_t        call;
    ag_header_t     *hdrs;
} ag_cli_call_t;

typedef struct {
    json_t          *arr;
    int              failed;
} ag_cli_trace_t;

typedef struct {
    const char      *name;
    json_t          *call;
    const char      *expect;
    json_t          *rule;       /* NULL: not checked; json null: no rule */
    json_t          *error;
    json_t          *monitor;
} ag_cli_case_t;


static const char  ag_cli_usage_text[] =
    "usage: agentgov <command> [arguments]\n"
    "\n"
    "  policy check FILE [--strict]\n"
    "  policy eval FILE CALL.json [--trace] [--bench N]\n"
    "  policy test FILE CASES.json\n"
    "  token --key KEY.pem --iss ISS --sub SUB [--aud AUD]... [--ttl 1h]\n"
    "        [--kid KID] [--groups a,b] [--claim name=value]...\n"
    "  keygen --out KEY.pem [--type ed25519|p256|rsa] [--jwks JWKS.json]\n"
    "        [--kid KID] [--force]\n"
    "  audit verify FILE... --key KEYFILE [--jwks JWKS.json]\n"
    "  audit show FILE [--agent A] [--task T] [--tool T] [--decision D]\n"
    "        [--event E] [--since RFC3339] [--json]\n"
    "  version\n"
    "  help\n"
    "\n"
    "Exit status: 0 success, 1 check or test failed (or a broken audit chain),\n"
    "2 usage or I/O error.\n";


/* --- small helpers -------------------------------------------------------- */

static int
ag_cli_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "agentgov: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nrun \"agentgov help\" for usage\n");
    return AG_CLI_USAGE;
}


/*
 * Matches argv[*i] against an option that takes a value, given as
 * "--name value" or "--name=value". Returns 1 and sets *val on a match,
 * 0 when argv[*i] is another argument, -1 when the value is missing.
 */
static int
ag_cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t       n;
    const char  *a;

    a = argv[*i];
    n = strlen(name);

    if (strncmp(a, name, n) != 0) {
        return 0;
    }

    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }

    if (a[n] != '\0') {
        return 0;
    }

    if (*i + 1 >= argc) {
        ag_cli_usage("option %s needs a value", name);
        return -1;
    }

    *i += 1;
    *val = argv[*i];
    return 1;
}


/* Reads a whole file ("-" is stdin) into a malloc'd, NUL-terminated buffer. */
static char *
ag_cli_read(const char *path, size_t *len)
{
    char  *buf, err[256];

    if (strcmp(path, "-") == 0) {
        buf = ag_read_stream(stdin, "stdin", AG_CLI_FILE_MAX, len, err,
                             sizeof(err));
    } else {
        buf = ag_read_file(path, AG_CLI_FILE_MAX, len, err, sizeof(err));
    }

    if (buf == NULL) {
        fprintf(stderr, "agentgov: %s\n", err);
    }

    return buf;
}


/* Reads and strictly parses a JSON file: duplicate keys and the rest of what
   ag_json_parse refuses are input errors here too. */
static json_t *
ag_cli_read_json(const char *path)
{
    char     err[AG_CLI_ERRLEN];
    char    *data;
    size_t   len;
    json_t  *v;

    data = ag_cli_read(path, &len);
    if (data == NULL) {
        return NULL;
    }

    v = ag_json_parse(data, len, err, sizeof(err));
    free(data);

    if (v == NULL) {
        fprintf(stderr, "agentgov: %s: %s\n", path, err);
    }

    return v;
}


/* Creates path with mode and writes data; refuses to replace a file unless
   force, and then replaces it by unlinking first so the new mode applies. */
static int
ag_cli_write(const char *path, const char *data, size_t len, mode_t mode,
    int force)
{
    int      fd;
    ssize_t  w;
    size_t   done;

    if (force && unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "agentgov: %s: %s\n", path, strerror(errno));
        return -1;
    }

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd == -1) {
        fprintf(stderr, "agentgov: %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (use --force to replace it)" : "");
        return -1;
    }

    for (done = 0; done < len; done += (size_t) w) {
        w = write(fd, data + done, len - done);
        if (w == -1 && errno == EINTR) {
            w = 0;
            continue;
        }
        if (w <= 0) {
            fprintf(stderr, "agentgov: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
    }

    if (close(fd) != 0) {
        fprintf(stderr, "agentgov: %s: %s\n", path, strerror(errno));
        return -1;
    }

    return 0;
}


static int
ag_cli_print_json(json_t *v)
{
    char  *s;

    s = json_dumps(v, JSON_INDENT(2));
    if (s == NULL) {
        fprintf(stderr, "agentgov: out of memory\n");
        return -1;
    }

    printf("%s\n", s);
    free(s);
    return 0;
}


/* --- policy check --------------------------------------------------------- */

typedef struct {
    const char  *file;
    int          count;
} ag_cli_lint_t;


static void
ag_cli_lint_warn(void *data, const char *msg)
{
    ag_cli_lint_t  *l = data;

    fprintf(stderr, "%s: warning: %s\n", l->file, msg);
    l->count++;
}


static int
ag_cli_policy_check(int argc, char **argv)
{
    int             i, strict;
    char            err[AG_CLI_ERRLEN];
    const char     *file;
    ag_policy_t    *p;
    ag_cli_lint_t   lint;

    file = NULL;
    strict = 0;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--strict") == 0) {
            strict = 1;

        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return ag_cli_usage("policy check: unknown option %s", argv[i]);

        } else if (file == NULL) {
            file = argv[i];

        } else {
            return ag_cli_usage("policy check: unexpected argument %s",
                                argv[i]);
        }
    }

    if (file == NULL) {
        return ag_cli_usage("%s", "policy check: FILE is missing");
    }

    p = ag_policy_load_file(file, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "%s: %s\n", file, err);
        return AG_CLI_FAIL;
    }

    lint.file = file;
    lint.count = 0;
    ag_policy_lint(p, ag_cli_lint_warn, &lint);

    printf("%s: ok (sha256 %s", file, ag_policy_sha256(p));
    if (lint.count) {
        printf(", %d warning%s", lint.count, lint.count == 1 ? "" : "s");
    }
    printf(")\n");

    ag_policy_free(p);

    return (strict && lint.count) ? AG_CLI_FAIL : AG_CLI_OK;
}


/* --- deciding a call ------------------------------------------------------ */

static size_t
ag_cli_count_headers(json_t *obj)
{
    size_t       n;
    json_t      *h, *v;
    const char  *k;

    n = 0;
    h = json_object_get(obj, "headers");

    /* an array value is a header sent more than once */
    json_object_foreach(h, k, v) {
        n += json_is_array(v) ? json_array_size(v) : 1;
    }

    return n ? n : 1;
}


/*
 * Builds a call from its JSON description, filling what the gateway would know
 * besides: the owner of a named agent and the tool that lists the call's
 * host (forward-proxy use). Without "time", ag_call_from_json takes now.
 */
static int
ag_cli_call_init(const ag_policy_t *p, json_t *obj, ag_cli_call_t *cc,
    char *err, size_t errlen)
{
    size_t              n;
    const ag_tool_t    *t;
    const ag_agent_t   *a;

    memset(cc, 0, sizeof(*cc));

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "a call must be a JSON object");
        return -1;
    }

    n = ag_cli_count_headers(obj);
    cc->hdrs = calloc(n, sizeof(ag_header_t));
    if (cc->hdrs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (ag_call_from_json(obj, &cc->call, cc->hdrs, n, err, errlen) != 0) {
        free(cc->hdrs);
        cc->hdrs = NULL;
        return -1;
    }

    if (cc->call.agent.len && cc->call.owner.len == 0) {
        a = ag_policy_agent_by_name(p, cc->call.agent.p, cc->call.agent.len);
        if (a != NULL && a->owner != NULL) {
            cc->call.owner.p = a->owner;
            cc->call.owner.len = strlen(a->owner);
        }
    }

    if (cc->call.tool.len == 0 && cc->call.host.len) {
        t = ag_policy_tool_by_host(p, cc->call.host.p, cc->call.host.len);
        if (t != NULL) {
            cc->call.tool.p = t->name;
            cc->call.tool.len = strlen(t->name);
        }
    }


    return 0;
}


static void
ag_cli_call_free(ag_cli_call_t *cc)
{
    free(cc->hdrs);
    cc->hdrs = NULL;
}


static void
ag_cli_trace(void *data, const ag_rule_t *rule, int matched, const char *why)
{
    json_t          *e;
    ag_cli_trace_t  *t = data;

    e = json_pack("{s:s, s:b, s:s?}", "rule", rule->id, "matched", matched,
                  "why", why);

    if (json_array_append_new(t->arr, e) != 0) {
        t->failed = 1;
    }
}


/* The SPEC section 9 code the gateway answers for a decision of its rules. */
static const char *
ag_cli_error_code(ag_effect_t effect)
{
    switch (effect) {
    case AG_DENY:
        return "denied";
    case AG_HOLD:
        return "approval_pending";
    default:
        return NULL;
    }
}


static json_t *
ag_cli_result(const ag_decision_t *d, const char *error, json_t *trace)
{
    char     name[32];
    size_t   i;
    json_t  *r, *holds, *m;

    holds = json_array();
    for (i = 0; holds != NULL && i < d->nholds; i++) {
        if (json_array_append_new(holds, json_string(d->holds[i]->id)) != 0) {
            json_decref(holds);
            holds = NULL;
        }
    }

    if (holds == NULL) {
        json_decref(trace);
        return NULL;
    }

    r = json_pack("{s:s, s:s?, s:s, s:o}",
                  "decision", ag_effect_name(d->effect),
                  "rule", d->rule ? d->rule->id : NULL,
                  "reason", d->reason ? d->reason : "",
                  "holds", holds);
    if (r == NULL) {
        json_decref(trace);
        return NULL;
    }

    if (d->monitor_effect != AG_EFFECT_NONE && d->monitor_rule != NULL) {
        snprintf(name, sizeof(name), "monitor-%s",
                 ag_effect_name(d->monitor_effect));
        m = json_pack("{s:s, s:s}", "decision", name,
                      "rule", d->monitor_rule->id);
        if (json_object_set_new(r, "monitor", m) != 0) {
            goto fail;
        }
    }

    if (error != NULL
        && json_object_set_new(r, "error", json_string(error)) != 0)
    {
        goto fail;
    }

    if (trace != NULL && json_object_set_new(r, "trace", trace) != 0) {
        trace = NULL;
        goto fail;
    }

    return r;

fail:

    json_decref(trace);
    json_decref(r);
    return NULL;
}


/*
 * The steps of the gateway's check order that need no gateway state: the tool
 * must exist, and when the call names an intent, the intent must exist and
 * list the tool. Returns NULL when the call passes, else the reason and *error.
 */
static const char *
ag_cli_scope(const ag_policy_t *p, const ag_call_t *call, const char **error)
{
    size_t              i;
    const ag_tool_t    *t;
    const ag_intent_t  *in;

    *error = "denied";

    if (call->tool.len == 0) {
        return call->host.len ? "no tool of the policy serves this host"
                              : "the call names no tool";
    }

    t = ag_policy_tool(p, call->tool.p, call->tool.len);
    if (t == NULL) {
        return "unknown tool";
    }

    if (call->intent.len == 0) {
        return NULL;
    }

    *error = "out_of_scope";

    in = ag_policy_intent(p, call->intent.p, call->intent.len);
    if (in == NULL) {
        return "unknown intent";
    }

    for (i = 0; i < in->ntools; i++) {
        if (strcmp(in->tools[i], t->name) == 0) {
            return NULL;
        }
    }

    return "tool not in the intent's tools";
}


/* Decides a call and describes the decision as `policy eval` prints it. */
static json_t *
ag_cli_decide(const ag_policy_t *p, const ag_call_t *call, int trace)
{
    const char      *error;
    ag_decision_t    d;
    ag_cli_trace_t   tr;

    memset(&d, 0, sizeof(d));
    tr.arr = NULL;
    tr.failed = 0;

    if (trace) {
        tr.arr = json_array();
        if (tr.arr == NULL) {
            return NULL;
        }
    }

    d.reason = ag_cli_scope(p, call, &error);

    if (d.reason != NULL) {
        d.effect = AG_DENY;
        return ag_cli_result(&d, error, tr.arr);
    }

    if (ag_policy_eval(p, call, &d, trace ? ag_cli_trace : NULL, &tr) != 0) {
        fprintf(stderr, "agentgov: evaluation failed: %s\n",
                d.reason ? d.reason : "(no reason)");
    }

    if (tr.failed) {
        json_decref(tr.arr);
        return NULL;
    }

    return ag_cli_result(&d, ag_cli_error_code(d.effect), tr.arr);
}


/* --- policy eval ---------------------------------------------------------- */

static void
ag_cli_bench(const ag_policy_t *p, const ag_call_t *call, long n)
{
    long             i;
    double           ns;
    ag_decision_t    d;
    struct timespec  t0, t1;

    (void) ag_policy_eval(p, call, &d, NULL, NULL);

    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (i = 0; i < n; i++) {
        (void) ag_policy_eval(p, call, &d, NULL, NULL);
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);

    ns = (double) (t1.tv_sec - t0.tv_sec) * 1e9
         + (double) (t1.tv_nsec - t0.tv_nsec);

    fprintf(stderr, "eval: %.0f ns/call (%ld calls, %s)\n", ns / (double) n,
            n, ag_effect_name(d.effect));
}


static int
ag_cli_eval_args(int argc, char **argv, const char **file, const char **callf,
    int *trace, long *bench)
{
    int          i, rc;
    char        *end;
    const char  *v;

    for (i = 0; i < argc; i++) {
        rc = ag_cli_opt(argc, argv, &i, "--bench", &v);
        if (rc < 0) {
            return -1;
        }

        if (rc == 1) {
            errno = 0;
            *bench = strtol(v, &end, 10);
            if (errno || *end != '\0' || *bench < 1
                || *bench > AG_CLI_BENCH_MAX)
            {
                ag_cli_usage("--bench: %s is not a count from 1", v);
                return -1;
            }

        } else if (strcmp(argv[i], "--trace") == 0) {
            *trace = 1;

        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            ag_cli_usage("policy eval: unknown option %s", argv[i]);
            return -1;

        } else if (*file == NULL) {
            *file = argv[i];

        } else if (*callf == NULL) {
            *callf = argv[i];

        } else {
            ag_cli_usage("policy eval: unexpected argument %s", argv[i]);
            return -1;
        }
    }

    if (*callf == NULL) {
        ag_cli_usage("%s", "policy eval: FILE and CALL.json are needed");
        return -1;
    }

    return 0;
}


static int
ag_cli_policy_eval(int argc, char **argv)
{
    int             trace, rc;
    long            bench;
    char            err[AG_CLI_ERRLEN];
    json_t         *obj, *res;
    const char     *file, *callf;
    ag_policy_t    *p;
    ag_cli_call_t   cc;

    file = NULL;
    callf = NULL;
    trace = 0;
    bench = 0;

    if (ag_cli_eval_args(argc, argv, &file, &callf, &trace, &bench) != 0) {
        return AG_CLI_USAGE;
    }

    p = ag_policy_load_file(file, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "%s: %s\n", file, err);
        return AG_CLI_FAIL;
    }

    rc = AG_CLI_USAGE;
    obj = ag_cli_read_json(callf);
    if (obj == NULL) {
        goto done;
    }

    if (ag_cli_call_init(p, obj, &cc, err, sizeof(err)) != 0) {
        fprintf(stderr, "agentgov: %s: %s\n", callf, err);
        goto done;
    }

    res = ag_cli_decide(p, &cc.call, trace);
    if (res == NULL) {
        fprintf(stderr, "agentgov: out of memory\n");

    } else if (ag_cli_print_json(res) == 0) {
        rc = AG_CLI_OK;
    }

    if (bench) {
        ag_cli_bench(p, &cc.call, bench);
    }

    json_decref(res);
    ag_cli_call_free(&cc);

done:

    json_decref(obj);
    ag_policy_free(p);
    return rc;
}


/* --- policy test ---------------------------------------------------------- */

/* An optional expectation: absent, null, or a string. */
static int
ag_cli_case_opt(json_t *c, const char *key, json_t **out, char *err,
    size_t errlen)
{
    json_t  *v;

    v = json_object_get(c, key);
    if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
        snprintf(err, errlen, "\"%s\" must be a string or null", key);
        return -1;
    }

    *out = v;
    return 0;
}


static int
ag_cli_case_parse(json_t *c, ag_cli_case_t *tc, char *err, size_t errlen)
{
    json_t      *v;
    const char  *k;

    memset(tc, 0, sizeof(*tc));

    if (!json_is_object(c)) {
        snprintf(err, errlen, "a case must be an object");
        return -1;
    }

    json_object_foreach(c, k, v) {
        if (strcmp(k, "name") && strcmp(k, "call") && strcmp(k, "expect")
            && strcmp(k, "rule") && strcmp(k, "error")
            && strcmp(k, "monitor"))
        {
            snprintf(err, errlen, "unknown key \"%s\"", k);
            return -1;
        }
    }

    tc->name = json_string_value(json_object_get(c, "name"));
    tc->call = json_object_get(c, "call");
    tc->expect = json_string_value(json_object_get(c, "expect"));

    if (tc->expect == NULL
        || (strcmp(tc->expect, "allow") && strcmp(tc->expect, "deny")
            && strcmp(tc->expect, "hold")))
    {
        snprintf(err, errlen, "\"expect\" must be allow, deny or hold");
        return -1;
    }

    if (!json_is_object(tc->call)) {
        snprintf(err, errlen, "\"call\" must be an object");
        return -1;
    }

    if (ag_cli_case_opt(c, "rule", &tc->rule, err, errlen) != 0
        || ag_cli_case_opt(c, "error", &tc->error, err, errlen) != 0
        || ag_cli_case_opt(c, "monitor", &tc->monitor, err, errlen) != 0)
    {
        return -1;
    }

    return 0;
}


/* Whether an expectation (NULL: unchecked; json null: must be absent or
   null) holds for the result's string value. */
static int
ag_cli_expect_ok(json_t *want, const char *got)
{
    if (want == NULL) {
        return 1;
    }

    if (json_is_null(want)) {
        return got == NULL;
    }

    return got != NULL && strcmp(json_string_value(want), got) == 0;
}


static const char *
ag_cli_expect_str(json_t *want)
{
    return json_is_string(want) ? json_string_value(want) : "none";
}


static int
ag_cli_case_check(const ag_cli_case_t *tc, json_t *res, char *msg,
    size_t msglen)
{
    int          n;
    const char  *got, *rule, *error, *mon;

    got = json_string_value(json_object_get(res, "decision"));
    rule = json_string_value(json_object_get(res, "rule"));
    error = json_string_value(json_object_get(res, "error"));
    mon = json_string_value(json_object_get(json_object_get(res, "monitor"),
                                            "decision"));

    if (got != NULL && strcmp(tc->expect, got) == 0
        && ag_cli_expect_ok(tc->rule, rule)
        && ag_cli_expect_ok(tc->error, error)
        && ag_cli_expect_ok(tc->monitor, mon))
    {
        return 1;
    }

    n = snprintf(msg, msglen, "expected %s", tc->expect);

    if (tc->rule && n >= 0 && (size_t) n < msglen) {
        n += snprintf(msg + n, msglen - n, " rule %s",
                      ag_cli_expect_str(tc->rule));
    }
    if (tc->error && n >= 0 && (size_t) n < msglen) {
        n += snprintf(msg + n, msglen - n, " error %s",
                      ag_cli_expect_str(tc->error));
    }
    if (tc->monitor && n >= 0 && (size_t) n < msglen) {
        n += snprintf(msg + n, msglen - n, " monitor %s",
                      ag_cli_expect_str(tc->monitor));
    }
    if (n >= 0 && (size_t) n < msglen) {
        n += snprintf(msg + n, msglen - n, " got %s (rule %s",
                      got ? got : "nothing", rule ? rule : "none");
    }
    if (tc->error && n >= 0 && (size_t) n < msglen) {
        n += snprintf(msg + n, msglen - n, ", error %s",
                      error ? error : "none");
    }
    if (tc->monitor && n >= 0 && (size_t) n < msglen) {
        n += snprintf(msg + n, msglen - n, ", monitor %s",
                      mon ? mon : "none");
    }
    if (n >= 0 && (size_t) n < msglen) {
        snprintf(msg + n, msglen - n, ")");
    }

    return 0;
}


/* Runs one case; returns 1 when it passed. */
static int
ag_cli_case_run(const ag_policy_t *p, json_t *c, size_t n)
{
    int             ok;
    char            err[AG_CLI_ERRLEN], msg[AG_CLI_ERRLEN * 2];
    char            dflt[32];
    json_t         *res;
    ag_cli_call_t   cc;
    ag_cli_case_t   tc;

    snprintf(dflt, sizeof(dflt), "case %zu", n);

    if (ag_cli_case_parse(c, &tc, err, sizeof(err)) != 0) {
        printf("not ok %zu - %s: bad case: %s\n", n,
               json_string_value(json_object_get(c, "name"))
               ? json_string_value(json_object_get(c, "name")) : dflt, err);
        return 0;
    }

    if (tc.name == NULL) {
        tc.name = dflt;
    }

    if (ag_cli_call_init(p, tc.call, &cc, err, sizeof(err)) != 0) {
        printf("not ok %zu - %s: bad call: %s\n", n, tc.name, err);
        return 0;
    }

    res = ag_cli_decide(p, &cc.call, 0);
    ag_cli_call_free(&cc);

    if (res == NULL) {
        printf("not ok %zu - %s: out of memory\n", n, tc.name);
        return 0;
    }

    ok = ag_cli_case_check(&tc, res, msg, sizeof(msg));
    json_decref(res);

    if (ok) {
        printf("ok %zu - %s\n", n, tc.name);
    } else {
        printf("not ok %zu - %s: %s\n", n, tc.name, msg);
    }

    return ok;
}


static int
ag_cli_policy_test(int argc, char **argv)
{
    char          err[AG_CLI_ERRLEN];
    size_t        i, passed, failed;
    json_t       *doc, *cases;
    ag_policy_t  *p;

    if (argc != 2 || argv[0][0] == '-' || argv[1][0] == '-') {
        return ag_cli_usage("%s",
                            "policy test: FILE and CASES.json are needed");
    }

    p = ag_policy_load_file(argv[0], err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return AG_CLI_FAIL;
    }

    doc = ag_cli_read_json(argv[1]);
    cases = json_object_get(doc, "cases");

    if (!json_is_array(cases)) {
        if (doc != NULL) {
            fprintf(stderr, "agentgov: %s: expected {\"cases\": [...]}\n",
                    argv[1]);
        }
        json_decref(doc);
        ag_policy_free(p);
        return AG_CLI_USAGE;
    }

    passed = 0;
    failed = 0;

    for (i = 0; i < json_array_size(cases); i++) {
        if (ag_cli_case_run(p, json_array_get(cases, i), i + 1)) {
            passed++;
        } else {
            failed++;
        }
    }

    printf("%zu passed, %zu failed\n", passed, failed);

    json_decref(doc);
    ag_policy_free(p);

    return failed ? AG_CLI_FAIL : AG_CLI_OK;
}


static int
ag_cli_policy(int argc, char **argv)
{
    if (argc < 1) {
        return ag_cli_usage("%s", "policy: check, eval or test?");
    }

    if (strcmp(argv[0], "check") == 0) {
        return ag_cli_policy_check(argc - 1, argv + 1);
    }

    if (strcmp(argv[0], "eval") == 0) {
        return ag_cli_policy_eval(argc - 1, argv + 1);
    }

    if (strcmp(argv[0], "test") == 0) {
        return ag_cli_policy_test(argc - 1, argv + 1);
    }

    return ag_cli_usage("policy: unknown subcommand %s", argv[0]);
}


/* --- token ---------------------------------------------------------------- */

typedef struct {
    const char  *key;
    const char  *iss;
    const char  *sub;
    const char  *ttl;
    const char  *kid;
    const char  *groups;
    json_t      *aud;       /* array of strings */
    json_t      *extra;     /* --claim values, in order */
} ag_cli_token_t;


/* "name=value": a value that parses as JSON is used as JSON, else as a
   string. */
static int
ag_cli_claim(json_t *extra, const char *arg)
{
    char        *name;
    json_t      *v;
    const char  *eq;

    eq = strchr(arg, '=');
    if (eq == NULL || eq == arg) {
        ag_cli_usage("--claim %s: expected name=value", arg);
        return -1;
    }

    v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (v == NULL) {
        v = json_string(eq + 1);
        if (v == NULL) {
            ag_cli_usage("--claim %s: not valid UTF-8", arg);
            return -1;
        }
    }

    name = strndup(arg, (size_t) (eq - arg));
    if (name == NULL || json_object_set_new(extra, name, v) != 0) {
        free(name);
        fprintf(stderr, "agentgov: out of memory\n");
        return -1;
    }

    free(name);
    return 0;
}


static int
ag_cli_token_opt(int argc, char **argv, int *i, ag_cli_token_t *o)
{
    int           k, rc;
    const char   *v;
    const char  **slot[] = { &o->key, &o->iss, &o->sub, &o->ttl, &o->kid,
                             &o->groups };
    static const char *names[] = { "--key", "--iss", "--sub", "--ttl",
                                   "--kid", "--groups" };

    for (k = 0; k < 6; k++) {
        rc = ag_cli_opt(argc, argv, i, names[k], slot[k]);
        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }
    }

    rc = ag_cli_opt(argc, argv, i, "--aud", &v);
    if (rc != 0) {
        if (rc > 0 && json_array_append_new(o->aud, json_string(v)) != 0) {
            ag_cli_usage("--aud %s: not valid UTF-8", v);
            return -1;
        }
        return rc < 0 ? -1 : 0;
    }

    rc = ag_cli_opt(argc, argv, i, "--claim", &v);
    if (rc != 0) {
        return rc < 0 ? -1 : ag_cli_claim(o->extra, v);
    }

    ag_cli_usage("token: unknown argument %s", argv[*i]);
    return -1;
}


static json_t *
ag_cli_groups(const char *list)
{
    json_t      *a;
    const char  *p, *e;

    a = json_array();

    for (p = list; a != NULL && *p != '\0'; p = *e ? e + 1 : e) {
        e = strchr(p, ',');
        if (e == NULL) {
            e = p + strlen(p);
        }

        if (e > p
            && json_array_append_new(a, json_stringn(p, (size_t) (e - p))) != 0)
        {
            json_decref(a);
            a = NULL;
        }
    }

    return a;
}


static json_t *
ag_cli_token_claims(const ag_cli_token_t *o, int64_t ttl)
{
    int            i;
    char           jti[33];
    json_t        *c, *aud;
    time_t         now;
    unsigned char  rnd[16];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return NULL;
    }

    for (i = 0; i < 16; i++) {
        snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
    }

    now = time(NULL);
    aud = json_array_size(o->aud) == 1 ? json_array_get(o->aud, 0) : o->aud;

    c = json_pack("{s:s, s:s, s:O, s:I, s:I, s:s}",
                  "iss", o->iss, "sub", o->sub, "aud", aud,
                  "iat", (json_int_t) now, "exp", (json_int_t) (now + ttl),
                  "jti", jti);
    if (c == NULL) {
        return NULL;
    }

    if (o->groups != NULL
        && json_object_set_new(c, "groups", ag_cli_groups(o->groups)) != 0)
    {
        json_decref(c);
        return NULL;
    }

    /* a --claim replaces a standard claim of the same name: tests need
       tokens that are expired, early or for another audience */
    if (json_object_update(c, o->extra) != 0) {
        json_decref(c);
        return NULL;
    }

    return c;
}


static int
ag_cli_token_sign(const ag_cli_token_t *o, int64_t ttl)
{
    int        rc;
    char       err[AG_CLI_ERRLEN], kid[128];
    char      *tok;
    json_t    *claims;
    EVP_PKEY  *key;

    key = ag_key_load_private(o->key, err, sizeof(err));
    if (key == NULL) {
        fprintf(stderr, "agentgov: %s\n", err);     /* err names the file */
        return AG_CLI_USAGE;
    }

    rc = AG_CLI_USAGE;
    claims = NULL;
    tok = NULL;

    if (o->kid == NULL && ag_key_thumbprint(key, kid, sizeof(kid)) != 0) {
        fprintf(stderr, "agentgov: %s: cannot compute the thumbprint\n",
                o->key);
        goto done;
    }

    claims = ag_cli_token_claims(o, ttl);
    if (claims == NULL) {
        fprintf(stderr, "agentgov: cannot build the claims\n");
        goto done;
    }

    if (ag_jwt_sign(key, o->kid ? o->kid : kid, "JWT", claims, &tok, err,
                    sizeof(err)) != 0)
    {
        fprintf(stderr, "agentgov: sign: %s\n", err);
        goto done;
    }

    printf("%s\n", tok);
    rc = AG_CLI_OK;

done:

    free(tok);
    json_decref(claims);
    EVP_PKEY_free(key);
    return rc;
}


static int
ag_cli_token(int argc, char **argv)
{
    int             i, rc;
    int64_t         ttl;
    ag_cli_token_t  o;

    memset(&o, 0, sizeof(o));
    o.ttl = "1h";
    o.aud = json_array();
    o.extra = json_object();
    rc = AG_CLI_USAGE;

    if (o.aud == NULL || o.extra == NULL) {
        goto done;
    }

    for (i = 0; i < argc; i++) {
        if (ag_cli_token_opt(argc, argv, &i, &o) != 0) {
            goto done;
        }
    }

    if (o.key == NULL || o.iss == NULL || o.sub == NULL) {
        ag_cli_usage("%s", "token: --key, --iss and --sub are needed");
        goto done;
    }

    ttl = ag_duration_parse(o.ttl, strlen(o.ttl));
    if (ttl <= 0) {
        ag_cli_usage("--ttl %s: expected a duration like 90s, 10m, 1h, 2d",
                     o.ttl);
        goto done;
    }

    if (json_array_size(o.aud) == 0
        && json_array_append_new(o.aud, json_string("agentgov")) != 0)
    {
        goto done;
    }

    rc = ag_cli_token_sign(&o, ttl);

done:

    json_decref(o.aud);
    json_decref(o.extra);
    return rc;
}


/* --- keygen --------------------------------------------------------------- */

static EVP_PKEY *
ag_cli_keygen_new(const char *type)
{
    if (strcmp(type, "ed25519") == 0) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    }

    if (strcmp(type, "p256") == 0) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    }

    if (strcmp(type, "rsa") == 0) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    }

    return NULL;
}


static int
ag_cli_write_pem(const char *path, EVP_PKEY *key, int force)
{
    int     rc;
    BIO    *bio;
    char   *data;
    long    len;

    bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        return -1;
    }

    rc = -1;

    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        fprintf(stderr, "agentgov: cannot encode the key\n");
        goto done;
    }

    len = BIO_get_mem_data(bio, &data);
    if (len > 0) {
        rc = ag_cli_write(path, data, (size_t) len, 0600, force);
    }

done:

    BIO_free(bio);
    return rc;
}


static int
ag_cli_write_jwks(const char *path, EVP_PKEY *key, const char *kid, int force)
{
    int      rc;
    char    *s;
    size_t   len;
    json_t  *jwks;

    jwks = json_pack("{s:[o]}", "keys", ag_jwk_public(key, kid));
    if (jwks == NULL) {
        fprintf(stderr, "agentgov: cannot build the JWKS\n");
        return -1;
    }

    s = json_dumps(jwks, JSON_INDENT(2));
    json_decref(jwks);

    if (s == NULL) {
        fprintf(stderr, "agentgov: out of memory\n");
        return -1;
    }

    len = strlen(s);
    s[len] = '\n';     /* json_dumps' NUL: the length is known */

    rc = ag_cli_write(path, s, len + 1, 0644, force);

    free(s);
    return rc;
}


typedef struct {
    const char  *out;
    const char  *type;
    const char  *jwks;
    const char  *kid;
    int          force;
} ag_cli_keygen_t;


static int
ag_cli_keygen_opt(int argc, char **argv, int *i, ag_cli_keygen_t *o)
{
    int           k, rc;
    const char  **slot[] = { &o->out, &o->type, &o->jwks, &o->kid };
    static const char *names[] = { "--out", "--type", "--jwks", "--kid" };

    if (strcmp(argv[*i], "--force") == 0) {
        o->force = 1;
        return 0;
    }

    for (k = 0; k < 4; k++) {
        rc = ag_cli_opt(argc, argv, i, names[k], slot[k]);
        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }
    }

    ag_cli_usage("keygen: unknown argument %s", argv[*i]);
    return -1;
}


static int
ag_cli_keygen_args(int argc, char **argv, ag_cli_keygen_t *o)
{
    int          i;
    const char  *f;

    for (i = 0; i < argc; i++) {
        if (ag_cli_keygen_opt(argc, argv, &i, o) != 0) {
            return -1;
        }
    }

    if (o->out == NULL) {
        ag_cli_usage("%s", "keygen: --out is needed");
        return -1;
    }

    if (strcmp(o->type, "ed25519") && strcmp(o->type, "p256")
        && strcmp(o->type, "rsa"))
    {
        ag_cli_usage("--type %s: expected ed25519, p256 or rsa", o->type);
        return -1;
    }

    /* refuse before generating, so that a refusal leaves nothing half done */
    for (i = 0; !o->force && i < 2; i++) {
        f = i ? o->jwks : o->out;
        if (f != NULL && access(f, F_OK) == 0) {
            fprintf(stderr, "agentgov: %s: File exists (use --force to "
                    "replace it)\n", f);
            return -1;
        }
    }

    return 0;
}


static int
ag_cli_keygen(int argc, char **argv)
{
    int              rc;
    char             kid[128];
    EVP_PKEY        *key;
    ag_cli_keygen_t  o;

    memset(&o, 0, sizeof(o));
    o.type = "ed25519";

    if (ag_cli_keygen_args(argc, argv, &o) != 0) {
        return AG_CLI_USAGE;
    }

    key = ag_cli_keygen_new(o.type);
    if (key == NULL) {
        fprintf(stderr, "agentgov: cannot generate a %s key\n", o.type);
        return AG_CLI_USAGE;
    }

    rc = AG_CLI_USAGE;

    if (o.kid == NULL) {
        if (ag_key_thumbprint(key, kid, sizeof(kid)) != 0) {
            fprintf(stderr, "agentgov: cannot compute the thumbprint\n");
            goto done;
        }
        o.kid = kid;
    }

    if (ag_cli_write_pem(o.out, key, o.force) != 0) {
        goto done;
    }

    if (o.jwks != NULL && ag_cli_write_jwks(o.jwks, key, o.kid, o.force) != 0)
    {
        goto done;
    }

    printf("%s\n", o.kid);
    rc = AG_CLI_OK;

done:

    EVP_PKEY_free(key);
    return rc;
}


/* --- audit: reading a file line by line ----------------------------------- */

/*
 * Audit files are read forwards in large chunks, one line at a time, so that
 * a file of any size takes constant memory: the buffer holds a chunk and one
 * line of at most AG_AUDIT_LINE_MAX bytes.
 */

#define AG_CLI_CHUNK      (1024 * 1024)
#define AG_CLI_SHOW_LINE  200         /* bytes of a line printed with an error */

typedef struct {
    const char  *name;
    int          fd;
    char        *buf;
    size_t       cap;
    size_t       start;               /* of the next line */
    size_t       scan;                /* no '\n' in [start, scan) */
    size_t       end;
    int          eof;
    uint64_t     line;                /* lines returned so far */
} ag_cli_lines_t;

typedef enum {
    AG_CLI_LINE_END = 0,
    AG_CLI_LINE_OK,
    AG_CLI_LINE_LONG,                 /* longer than AG_AUDIT_LINE_MAX */
    AG_CLI_LINE_ERROR                 /* a read error, errno set */
} ag_cli_line_rc_t;


static int
ag_cli_lines_open(ag_cli_lines_t *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->name = name;

    if (strcmp(name, "-") == 0) {
        r->fd = STDIN_FILENO;
        r->name = "stdin";

    } else {
        r->fd = open(name, O_RDONLY | O_CLOEXEC);
        if (r->fd == -1) {
            fprintf(stderr, "agentgov: %s: %s\n", name, strerror(errno));
            return -1;
        }
    }

    r->cap = AG_CLI_CHUNK + AG_AUDIT_LINE_MAX + 1;
    r->buf = malloc(r->cap);
    if (r->buf == NULL) {
        fprintf(stderr, "agentgov: out of memory\n");
        if (r->fd != STDIN_FILENO) {
            close(r->fd);
        }
        return -1;
    }

    return 0;
}


static void
ag_cli_lines_close(ag_cli_lines_t *r)
{
    if (r->fd != STDIN_FILENO && r->fd != -1) {
        close(r->fd);
    }
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}


/* The next line, without its '\n'; *complete is 0 for a last line that the
   file ended before. */
static ag_cli_line_rc_t
ag_cli_lines_next(ag_cli_lines_t *r, const char **line, size_t *len,
    int *complete)
{
    char     *nl;
    ssize_t   n;

    for ( ;; ) {
        nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);

        if (nl != NULL) {
            *line = r->buf + r->start;
            *len = (size_t) (nl - *line);
            *complete = 1;
            r->start = r->scan = (size_t) (nl - r->buf) + 1;
            r->line++;
            return *len > AG_AUDIT_LINE_MAX ? AG_CLI_LINE_LONG
                                            : AG_CLI_LINE_OK;
        }

        r->scan = r->end;

        if (r->end - r->start > AG_AUDIT_LINE_MAX) {
            r->line++;
            return AG_CLI_LINE_LONG;
        }

        if (r->eof) {
            if (r->start == r->end) {
                return AG_CLI_LINE_END;
            }

            *line = r->buf + r->start;
            *len = r->end - r->start;
            *complete = 0;
            r->start = r->scan = r->end;
            r->line++;
            return AG_CLI_LINE_OK;
        }

        /* keep the line begun, read the next chunk after it */

        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scan = r->end;
            r->start = 0;
        }

        n = read(r->fd, r->buf + r->end, r->cap - r->end);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return AG_CLI_LINE_ERROR;
        }

        if (n == 0) {
            r->eof = 1;
        }

        r->end += (size_t) n;
    }
}


/* At most AG_CLI_SHOW_LINE bytes of a line, control bytes escaped, on
   standard error. */
static void
ag_cli_show_line(const char *line, size_t len)
{
    size_t               i, n;
    const unsigned char  *u = (const unsigned char *) line;

    n = len > AG_CLI_SHOW_LINE ? AG_CLI_SHOW_LINE : len;

    /* not in the middle of a UTF-8 sequence */
    while (n < len && n > 0 && (u[n] & 0xc0) == 0x80) {
        n--;
    }

    fputs("    ", stderr);

    for (i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f) {
            fprintf(stderr, "\\x%02x", u[i]);
        } else {
            fputc(u[i], stderr);
        }
    }

    fprintf(stderr, "%s\n", n < len ? "..." : "");
}


/* --- audit verify ---------------------------------------------------------- */

typedef struct {
    const char   **files;
    int            nfiles;
    const char    *key;
    const char    *jwks;
} ag_cli_verify_t;


static int
ag_cli_verify_args(int argc, char **argv, ag_cli_verify_t *o)
{
    int  i, rc;

    for (i = 0; i < argc; i++) {
        rc = ag_cli_opt(argc, argv, &i, "--key", &o->key);
        if (rc == 0) {
            rc = ag_cli_opt(argc, argv, &i, "--jwks", &o->jwks);
        }
        if (rc < 0) {
            return -1;
        }
        if (rc > 0) {
            continue;
        }

        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            ag_cli_usage("audit verify: unknown option %s", argv[i]);
            return -1;
        }

        o->files[o->nfiles++] = argv[i];
    }

    if (o->nfiles == 0 || o->key == NULL) {
        ag_cli_usage("%s", "audit verify: FILE... and --key KEYFILE are "
                     "needed");
        return -1;
    }

    return 0;
}


/* Line n (from 1) of a file, read again to show it with an error about a
   line the verifier held. */
static void
ag_cli_show_line_at(const char *name, uint64_t n)
{
    int              complete;
    size_t           len;
    const char      *line;
    ag_cli_lines_t   r;
    ag_cli_line_rc_t rc;

    if (strcmp(name, "-") == 0 || ag_cli_lines_open(&r, name) != 0) {
        return;
    }

    while ((rc = ag_cli_lines_next(&r, &line, &len, &complete))
           != AG_CLI_LINE_END && rc != AG_CLI_LINE_ERROR)
    {
        if (r.line == n) {
            if (rc == AG_CLI_LINE_OK) {
                ag_cli_show_line(line, len);
            }
            break;
        }
    }

    ag_cli_lines_close(&r);
}


/*
 * Print a broken chain as FILE:LINE: why. The verifier names a held line by
 * its number among all the lines fed ("line N: ..."), which is mapped back
 * to its file; any other error is about the line just fed.
 */
static void
ag_cli_verify_report(const ag_cli_verify_t *o, const uint64_t *first, int f,
    uint64_t local, const char *line, size_t len, const char *err)
{
    int                 i;
    char               *end;
    unsigned long long  n;

    if (strncmp(err, "line ", 5) == 0) {
        n = strtoull(err + 5, &end, 10);

        if (end != err + 5 && strncmp(end, ": ", 2) == 0) {
            for (i = f; i > 0 && first[i] > n; i--) {
                /* void */
            }

            fprintf(stderr, "%s:%llu: %s\n", o->files[i],
                    n - first[i] + 1, end + 2);
            ag_cli_show_line_at(o->files[i], n - first[i] + 1);
            return;
        }
    }

    fprintf(stderr, "%s:%llu: %s\n", o->files[f], (unsigned long long) local,
            err);

    if (line != NULL) {
        ag_cli_show_line(line, len);
    }
}


/* 0 when every line of the file holds the chain, 1 when one breaks it,
   2 on a read error. */
static int
ag_cli_verify_file(const ag_cli_verify_t *o, ag_audit_verifier_t *v,
    const uint64_t *first, int f, uint64_t *lines)
{
    int               complete;
    char              err[AG_CLI_ERRLEN], why[AG_CLI_ERRLEN];
    size_t            len;
    const char       *line;
    ag_cli_lines_t    r;
    ag_cli_line_rc_t  rc;

    if (ag_cli_lines_open(&r, o->files[f]) != 0) {
        return AG_CLI_USAGE;
    }

    for ( ;; ) {
        rc = ag_cli_lines_next(&r, &line, &len, &complete);

        if (rc == AG_CLI_LINE_END) {
            break;
        }

        if (rc == AG_CLI_LINE_ERROR) {
            fprintf(stderr, "agentgov: %s: %s\n", r.name, strerror(errno));
            ag_cli_lines_close(&r);
            return AG_CLI_USAGE;
        }

        (*lines)++;

        if (rc == AG_CLI_LINE_LONG) {
            snprintf(why, sizeof(why), "line %" PRIu64 ": not a record (longer "
                     "than %d bytes)", *lines, AG_AUDIT_LINE_MAX);
            ag_cli_verify_report(o, first, f, r.line, NULL, 0, why);
            ag_cli_lines_close(&r);
            return AG_CLI_FAIL;
        }

        if (ag_audit_verify_line(v, line, len, complete, err, sizeof(err))
            != 0)
        {
            ag_cli_verify_report(o, first, f, r.line, line, len, err);
            ag_cli_lines_close(&r);
            return AG_CLI_FAIL;
        }
    }

    ag_cli_lines_close(&r);
    return AG_CLI_OK;
}


static int
ag_cli_audit_verify(int argc, char **argv)
{
    int                       f, rc;
    char                      err[AG_CLI_ERRLEN];
    uint64_t                  lines, *first;
    ag_jwks_t                *jwks;
    ag_audit_key_t           *key;
    ag_cli_verify_t           o;
    ag_audit_verifier_t      *v;
    ag_audit_verify_stats_t   st;

    memset(&o, 0, sizeof(o));
    o.files = calloc((size_t) argc + 1, sizeof(char *));
    first = calloc((size_t) argc + 1, sizeof(uint64_t));
    key = NULL;
    jwks = NULL;
    v = NULL;
    rc = AG_CLI_USAGE;

    if (o.files == NULL || first == NULL) {
        fprintf(stderr, "agentgov: out of memory\n");
        goto done;
    }

    if (ag_cli_verify_args(argc, argv, &o) != 0) {
        goto done;
    }

    key = ag_audit_key_load(o.key, err, sizeof(err));
    if (key == NULL) {
        fprintf(stderr, "agentgov: %s\n", err);     /* err names the file */
        goto done;
    }

    if (o.jwks != NULL) {
        jwks = ag_jwks_load(o.jwks, err, sizeof(err));
        if (jwks == NULL) {
            fprintf(stderr, "agentgov: %s\n", err);
            goto done;
        }
    }

    v = ag_audit_verifier_new(key, jwks);
    if (v == NULL) {
        fprintf(stderr, "agentgov: out of memory\n");
        goto done;
    }

    lines = 0;

    for (f = 0; f < o.nfiles; f++) {
        first[f] = lines + 1;
        rc = ag_cli_verify_file(&o, v, first, f, &lines);
        if (rc != AG_CLI_OK) {
            goto done;
        }
    }

    if (ag_audit_verify_end(v, err, sizeof(err)) != 0) {
        ag_cli_verify_report(&o, first, o.nfiles - 1, 0, NULL, 0, err);
        rc = AG_CLI_FAIL;
        goto done;
    }

    ag_audit_verify_stats(v, &st);

    printf("ok: %" PRIu64 " record%s", st.records, st.records == 1 ? "" : "s");
    if (st.records) {
        printf(" (seq %" PRIu64 "..%" PRIu64 ")", st.first_seq, st.last_seq);
    }
    printf(", %" PRIu64 " checkpoint%s verified, %" PRIu64 " restart%s\n",
           st.checkpoints, st.checkpoints == 1 ? "" : "s", st.restarts,
           st.restarts == 1 ? "" : "s");

    if (jwks == NULL) {
        fprintf(stderr, "agentgov: note: checkpoint signatures were not "
                "checked (no --jwks): a chain rewritten by someone who holds "
                "the HMAC key would pass\n");
    }

    rc = AG_CLI_OK;

done:

    ag_audit_verifier_free(v);
    ag_jwks_free(jwks);
    ag_audit_key_free(key);
    free(first);
    free(o.files);
    return rc;
}


/* --- audit show ------------------------------------------------------------ */

typedef struct {
    const char          *file;
    ag_audit_filter_t    filter;
    const char          *since;
    char                 since_ts[AG_AUDIT_TS_LEN + 1];
    int                  json;
    int                  colour;
    uint64_t             skipped;     /* lines that are not records */
} ag_cli_show_t;

#define AG_CLI_RED        "\033[31m"
#define AG_CLI_GREEN      "\033[32m"
#define AG_CLI_YELLOW     "\033[33m"
#define AG_CLI_RESET      "\033[0m"


static int
ag_cli_show_args(int argc, char **argv, ag_cli_show_t *o)
{
    int          i, k, rc;
    int64_t      us;
    const char  *v;
    ag_str_t    *slot[] = { &o->filter.agent, &o->filter.task,
                            &o->filter.tool, &o->filter.decision,
                            &o->filter.event };
    static const char *names[] = { "--agent", "--task", "--tool",
                                   "--decision", "--event" };

    for (i = 0; i < argc; i++) {
        for (k = 0, rc = 0; rc == 0 && k < 5; k++) {
            rc = ag_cli_opt(argc, argv, &i, names[k], &v);
            if (rc > 0) {
                slot[k]->p = v;
                slot[k]->len = strlen(v);
            }
        }

        if (rc == 0) {
            rc = ag_cli_opt(argc, argv, &i, "--since", &o->since);
        }

        if (rc < 0) {
            return -1;
        }

        if (rc > 0) {
            continue;
        }

        if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;

        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            ag_cli_usage("audit show: unknown option %s", argv[i]);
            return -1;

        } else if (o->file == NULL) {
            o->file = argv[i];

        } else {
            ag_cli_usage("audit show: unexpected argument %s", argv[i]);
            return -1;
        }
    }

    if (o->file == NULL) {
        ag_cli_usage("%s", "audit show: FILE is missing");
        return -1;
    }

    if (o->since != NULL) {
        if (ag_audit_ts_parse(o->since, strlen(o->since), &us) != 0) {
            ag_cli_usage("--since %s: expected an RFC 3339 time in UTC, like "
                         "2026-11-23T15:00:00Z", o->since);
            return -1;
        }

        /* records' ts have one fixed form, so text order is time order */
        ag_audit_ts(us, o->since_ts);
    }

    return 0;
}


/*
 * A value from the record, for a terminal: names and paths come from agents,
 * so control characters (C0, DEL and C1, which can start escape sequences)
 * are shown as '?'. The cell is padded to width and followed by a space; a
 * longer value is not cut. colour, when set, wraps the value.
 */
static void
ag_cli_cell(ag_buf_t *row, const char *s, size_t len, int width,
    const char *colour)
{
    size_t               i, run;
    const unsigned char  *u = (const unsigned char *) s;

    if (colour != NULL) {
        ag_buf_str(row, colour);
    }

    for (i = 0; i < len; i += run) {
        for (run = 0; i + run < len && u[i + run] >= 0x20
                      && u[i + run] != 0x7f && u[i + run] != 0xc2; run++)
        {
            /* void */
        }

        if (run > 0) {
            ag_buf_add(row, s + i, run);
            continue;
        }

        run = 1;

        if (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80
            && u[i + 1] <= 0x9f)
        {
            run = 2;
            ag_buf_add(row, "?", 1);

        } else if (u[i] == 0xc2) {
            ag_buf_add(row, s + i, 1);

        } else {
            ag_buf_add(row, "?", 1);
        }
    }

    if (colour != NULL) {
        ag_buf_str(row, AG_CLI_RESET);
    }

    for ( /* void */ ; (int) len < width; len++) {
        ag_buf_add(row, " ", 1);
    }

    ag_buf_add(row, " ", 1);
}


static void
ag_cli_cell_json(ag_buf_t *row, json_t *v, int width, const char *colour)
{
    if (json_is_string(v)) {
        ag_cli_cell(row, json_string_value(v), json_string_length(v), width,
                    colour);
    } else {
        ag_cli_cell(row, "-", 1, width, NULL);
    }
}


static const char *
ag_cli_decision_colour(const char *d)
{
    if (d == NULL) {
        return NULL;
    }

    if (strcmp(d, "deny") == 0 || strcmp(d, "denied") == 0
        || strcmp(d, "expired") == 0)
    {
        return AG_CLI_RED;
    }

    if (strcmp(d, "allow") == 0 || strcmp(d, "approved") == 0) {
        return AG_CLI_GREEN;
    }

    if (strcmp(d, "hold") == 0 || strncmp(d, "monitor-", 8) == 0) {
        return AG_CLI_YELLOW;
    }

    return NULL;
}


/* What the record acts on, by its kind: the call's method and path or MCP
   tool, an approval, a task or agent operation, a checkpoint's record. */
static void
ag_cli_action(json_t *rec, char *buf, size_t size)
{
    json_t      *a, *v;
    const char  *s1, *s2;

    buf[0] = '\0';
    a = json_object_get(rec, "action");

    if (json_is_object(a)) {
        s1 = json_string_value(json_object_get(a, "method"));
        s2 = json_string_value(json_object_get(a, "path"));
        if (s1 == NULL) {
            s1 = json_string_value(json_object_get(a, "mcp_method"));
            s2 = json_string_value(json_object_get(a, "mcp_tool"));
        }
        snprintf(buf, size, "%s%s%s", s1 ? s1 : "", s1 && s2 ? " " : "",
                 s2 ? s2 : "");
        return;
    }

    a = json_object_get(rec, "approval");
    if (json_is_object(a)) {
        s1 = json_string_value(json_object_get(a, "id"));
        s2 = json_string_value(json_object_get(a, "approver"));
        snprintf(buf, size, "approval %s%s%s", s1 ? s1 : "?",
                 s2 ? " by " : "", s2 ? s2 : "");
        return;
    }

    a = json_object_get(rec, "checkpoint");
    if (json_is_object(a)) {
        v = json_object_get(a, "seq");
        snprintf(buf, size, "of seq %" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return;
    }

    a = json_object_get(rec, "partial");
    if (json_is_object(a)) {
        v = json_object_get(a, "bytes");
        snprintf(buf, size, "after %" JSON_INTEGER_FORMAT " partial bytes",
                 json_integer_value(v));
        return;
    }

    s1 = json_string_value(json_object_get(rec, "op"));
    s2 = json_string_value(json_object_get(rec, "by"));
    if (s1 != NULL) {
        snprintf(buf, size, "%s%s%s", s1, s2 ? " by " : "", s2 ? s2 : "");
        return;
    }

    a = json_object_get(rec, "policy");
    s1 = json_string_value(json_object_get(a, "sha256"));
    s2 = json_string_value(json_object_get(rec, "reason"));
    if (s1 != NULL) {
        snprintf(buf, size, "%s sha256 %.12s", s2 ? s2 : "policy", s1);
    }
}


static void
ag_cli_status(json_t *rec, char *buf, size_t size)
{
    int         n;
    json_t     *st, *lat;
    json_int_t  us;

    buf[0] = '\0';
    st = json_object_get(rec, "status");
    lat = json_object_get(rec, "latency_us");
    n = 0;

    if (json_is_integer(st)) {
        n = snprintf(buf, size, "%" JSON_INTEGER_FORMAT " ",
                     json_integer_value(st));
    }

    if (!json_is_integer(lat) || n < 0 || (size_t) n >= size) {
        return;
    }

    us = json_integer_value(lat);

    if (us < 1000) {
        snprintf(buf + n, size - n, "%" JSON_INTEGER_FORMAT "us", us);
    } else if (us < 1000000) {
        snprintf(buf + n, size - n, "%.1fms", (double) us / 1e3);
    } else {
        snprintf(buf + n, size - n, "%.2fs", (double) us / 1e6);
    }
}


#define AG_CLI_SHOW_HEADER                                                   \
    "SEQ      TIME                    EVENT      DECISION     AGENT"         \
    "            TOOL         ACTION                         RULE"           \
    "                 STATUS\n"


static void
ag_cli_show_record(const ag_cli_show_t *o, ag_buf_t *row,
    const ag_audit_line_t *l, const char *line, size_t len)
{
    char          seq[24], ts[32], action[256], status[64];
    json_t       *rec, *d;
    json_error_t  jerr;

    /* the line has a record's form, but its members may still not be JSON:
       the columns that need them are then "-" */
    rec = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                     &jerr);

    ag_buf_reset(row);

    snprintf(seq, sizeof(seq), "%" PRIu64, l->seq);
    ag_cli_cell(row, seq, strlen(seq), 8, NULL);

    /* 2026-11-23 15:35:57.123: to the millisecond; --json has it all */
    memcpy(ts, l->ts.p, 23);
    ts[10] = ' ';
    ag_cli_cell(row, ts, 23, 23, NULL);

    ag_cli_cell(row, l->event.p, l->event.len, 10, NULL);

    d = json_object_get(rec, "decision");
    ag_cli_cell_json(row, d, 12, o->colour
                     ? ag_cli_decision_colour(json_string_value(d)) : NULL);

    ag_cli_cell_json(row, json_object_get(rec, "agent"), 16, NULL);
    ag_cli_cell_json(row, json_object_get(rec, "tool"), 12, NULL);

    ag_cli_action(rec, action, sizeof(action));
    ag_cli_cell(row, action[0] ? action : "-", action[0] ? strlen(action) : 1,
                30, NULL);

    ag_cli_cell_json(row, json_object_get(rec, "rule"), 20, NULL);

    ag_cli_status(rec, status, sizeof(status));
    ag_cli_cell(row, status, strlen(status), 0, NULL);

    while (row->len > 0 && row->p[row->len - 1] == ' ') {
        row->len--;
    }

    ag_buf_add(row, "\n", 1);

    if (!row->failed) {
        fwrite(row->p, 1, row->len, stdout);
    }

    json_decref(rec);
}


static int
ag_cli_audit_show(int argc, char **argv)
{
    int               complete;
    size_t            len;
    ag_buf_t          row;
    const char       *line, *nc;
    ag_cli_show_t     o;
    ag_cli_lines_t    r;
    ag_audit_line_t   l;
    ag_cli_line_rc_t  rc;

    memset(&o, 0, sizeof(o));
    memset(&row, 0, sizeof(row));

    if (ag_cli_show_args(argc, argv, &o) != 0) {
        return AG_CLI_USAGE;
    }

    nc = getenv("NO_COLOR");
    o.colour = !o.json && isatty(STDOUT_FILENO) && (nc == NULL || nc[0] == 0);

    if (ag_cli_lines_open(&r, o.file) != 0) {
        return AG_CLI_USAGE;
    }

    if (!o.json) {
        fputs(AG_CLI_SHOW_HEADER, stdout);
    }

    for ( ;; ) {
        rc = ag_cli_lines_next(&r, &line, &len, &complete);

        if (rc == AG_CLI_LINE_END) {
            break;
        }

        if (rc == AG_CLI_LINE_ERROR) {
            fprintf(stderr, "agentgov: %s: %s\n", r.name, strerror(errno));
            ag_cli_lines_close(&r);
            ag_buf_free(&row);
            return AG_CLI_USAGE;
        }

        if (rc == AG_CLI_LINE_LONG || !complete
            || ag_audit_line_parse(line, len, &l, NULL, 0) != 0)
        {
            o.skipped++;
            continue;
        }

        if ((o.since != NULL
             && memcmp(l.ts.p, o.since_ts, AG_AUDIT_TS_LEN) < 0)
            || !ag_audit_filter_match(&o.filter, line, len))
        {
            continue;
        }

        if (o.json) {
            fwrite(line, 1, len, stdout);
            putchar('\n');
        } else {
            ag_cli_show_record(&o, &row, &l, line, len);
        }
    }

    ag_cli_lines_close(&r);
    ag_buf_free(&row);

    if (o.skipped) {
        fflush(stdout);
        fprintf(stderr, "agentgov: %s: %" PRIu64 " line%s that %s not a "
                "record (see agentgov audit verify)\n", r.name, o.skipped,
                o.skipped == 1 ? "" : "s", o.skipped == 1 ? "is" : "are");
    }

    return AG_CLI_OK;
}


static int
ag_cli_audit(int argc, char **argv)
{
    if (argc < 1) {
        return ag_cli_usage("%s", "audit: verify or show?");
    }

    if (strcmp(argv[0], "verify") == 0) {
        return ag_cli_audit_verify(argc - 1, argv + 1);
    }

    if (strcmp(argv[0], "show") == 0) {
        return ag_cli_audit_show(argc - 1, argv + 1);
    }

    return ag_cli_usage("audit: unknown subcommand %s", argv[0]);
}


/* --- main ----------------------------------------------------------------- */

static int
ag_cli_version(void)
{
    char  pcre[64];

    if (pcre2_config(PCRE2_CONFIG_VERSION, pcre) < 0) {
        snprintf(pcre, sizeof(pcre), "unknown");
    }

    printf("agentgov %s (%s, PCRE2 %s, jansson %s)\n", AGENTGOV_VERSION,
           OpenSSL_version(OPENSSL_VERSION), pcre, jansson_version_str());
    return AG_CLI_OK;
}


int
main(int argc, char **argv)
{
    int          rc;
    const char  *cmd;

    if (argc < 2) {
        fputs(ag_cli_usage_text, stderr);
        return AG_CLI_USAGE;
    }

    cmd = argv[1];

    if (strcmp(cmd, "policy") == 0) {
        rc = ag_cli_policy(argc - 2, argv + 2);

    } else if (strcmp(cmd, "token") == 0) {
        rc = ag_cli_token(argc - 2, argv + 2);

    } else if (strcmp(cmd, "keygen") == 0) {
        rc = ag_cli_keygen(argc - 2, argv + 2);

    } else if (strcmp(cmd, "audit") == 0) {
        rc = ag_cli_audit(argc - 2, argv + 2);

    } else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        rc = ag_cli_version();

    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0
               || strcmp(cmd, "-h") == 0)
    {
        fputs(ag_cli_usage_text, stdout);
        rc = AG_CLI_OK;

    } else {
        rc = ag_cli_usage("unknown command %s", cmd);
    }

    if (fflush(stdout) != 0 && rc == AG_CLI_OK) {
        fprintf(stderr, "agentgov: write error: %s\n", strerror(errno));
        rc = AG_CLI_USAGE;
    }

    return rc;
}
