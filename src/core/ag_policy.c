/*
 * The policy engine (SPEC section 5): load and validate a policy with a JSON
 * path in every error, compile its globs, regexes and conditions, index its
 * rules by tool and method, and evaluate calls against it.
 *
 * Everything a compiled policy owns lives in one pool, and the parsed JSON
 * is kept for the policy's life so that names and operands can point into
 * it. After load nothing is written: any number of threads or processes
 * may evaluate against one policy.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "ag_json.h"
#include "ag_match.h"
#include "ag_policy.h"


#define AG_POLICY_MAX_FILE  (16 * 1024 * 1024)
#define AG_NAME_MAX         128
#define AG_MAX_READS        32

/* Rules are kept apart by what they can do, so that evaluation looks at
   enforced denies first and stops at the first that matches. */
enum {
    AG_C_DENY = 0,
    AG_C_HOLD,
    AG_C_ALLOW,
    AG_C_MDENY,
    AG_C_MHOLD,
    AG_C_MALLOW,
    AG_NCLASS
};

typedef struct {
    const char  **v;
    size_t        n;
} ag_names_t;

typedef struct {
    ag_glob_t   **v;
    const char  **src;              /* the patterns as compiled */
    size_t        n;
} ag_globs_t;

typedef struct {
    ag_rule_t     pub;              /* first: ag_rule_t * converts back */
    const char   *own_reason;       /* "denied by rule x" when no reason */
    int           cls;
    ag_names_t    agents;
    ag_names_t    owners;
    ag_names_t    intents;
    ag_names_t    tools;
    size_t       *tool_idx;         /* tools resolved to p->tools indices */
    ag_names_t    methods;
    ag_globs_t    paths;
    ag_regex_t   *path_re;
    ag_globs_t    hosts;
    ag_globs_t    mcp_method;
    ag_globs_t    mcp_tool;
    ag_globs_t    mcp_resource;
    ag_globs_t    mcp_prompt;
    ag_when_t    *when;
    json_t       *json;
} ag_rule_int_t;

/* Rules grouped by class, each group in file order: class k is
   r[off[k]] .. r[off[k + 1] - 1]. */
typedef struct {
    ag_rule_int_t  **r;
    size_t           off[AG_NCLASS + 1];
} ag_rlist_t;

/* The rules of a large cell by the segments of their paths: a node is
   reached by a path whose segments so far are, one by one, the literal
   segments of its edges, or anything for a '*' edge. */
typedef struct ag_tnode_s  ag_tnode_t;

typedef struct {
    const char      *s;             /* not NUL-terminated */
    size_t           len;
    ag_tnode_t      *node;
} ag_tedge_t;

struct ag_tnode_s {
    ag_tedge_t      *edge;          /* literal segments, sorted bytewise */
    size_t           nedge;
    ag_tnode_t      *star;          /* a segment with '*' (not "**") */
    ag_rlist_t       sub;           /* for every path that reaches here */
    ag_rlist_t       end;           /* for a path that ends here */
    size_t           id;            /* creation order, while building */
    size_t           cap;           /* of edge, while building */
};

typedef struct {
    ag_tnode_t      *root;
    ag_rlist_t       rest;          /* no path, or none the trie can hold */
    ag_rlist_t       re;            /* the trie's regex rules: all of them
                                       are candidates for a non-ASCII path */
} ag_pindex_t;

/* The rules of one (tool, method) cell, and for a large cell an index of
   them by the segments of their paths. */
typedef struct {
    const char      *method;        /* NULL: rules with no method constraint */
    size_t           len;
    ag_rlist_t       all;
    ag_pindex_t     *px;            /* NULL: a small cell, scanned whole */
} ag_mbucket_t;

typedef struct {
    ag_mbucket_t     any;
    ag_mbucket_t    *m;
    size_t           nm;
} ag_bucket_t;

typedef struct {
    ag_tool_t        pub;           /* first */
    ag_bucket_t      bucket;        /* rules that name this tool */
} ag_tool_int_t;

/* How an identity is recognised: a SPIFFE ID (exact or glob) or JWT claims. */
typedef struct {
    const char      *spiffe;
    ag_glob_t       *glob;
    json_t          *claims;
} ag_matcher_t;

typedef struct {
    ag_agent_t       pub;           /* first */
    ag_matcher_t     m;
} ag_agent_int_t;

typedef struct {
    const char      *name;          /* first */
    ag_matcher_t    *m;
    size_t           n;
} ag_group_t;

typedef struct {
    const char      *host;          /* lower case; ".example.org" for "*." */
    size_t           len;
    ag_tool_int_t   *tool;
} ag_host_t;

struct ag_policy_s {
    ag_pool_t        *pool;
    json_t           *root;
    char              sha256[65];
    ag_effect_t       deflt;

    ag_tool_int_t    *tools;
    size_t            ntools;
    ag_tool_int_t   **tools_by_name;
    ag_agent_int_t   *agents;
    size_t            nagents;
    ag_agent_int_t  **agents_by_name;
    ag_agent_int_t  **agents_exact;     /* exact SPIFFE IDs, sorted by ID */
    size_t            nagents_exact;
    ag_agent_int_t  **agents_other;     /* globs and JWT claims */
    size_t            nagents_other;
    ag_group_t       *groups;
    size_t            ngroups;
    ag_group_t      **groups_by_name;
    ag_intent_t      *intents;
    size_t            nintents;
    ag_intent_t     **intents_by_name;
    ag_rule_int_t    *rules;
    size_t            nrules;
    ag_rule_int_t   **rules_by_id;

    ag_names_t        admins;
    ag_names_t        auditors;
    ag_names_t        strip_headers;
    ag_names_t        strip_query;
    ag_names_t        secret_names;
    ag_names_t        secret_regexes;

    ag_host_t        *hosts_exact;      /* sorted */
    size_t            nhosts_exact;
    ag_host_t        *hosts_wild;       /* sorted */
    size_t            nhosts_wild;

    ag_bucket_t       wild;             /* rules that name no tool */
};


static const char *ag_builtin_secrets[] = {
    "aws_access_key", "aws_secret_key", "github_token", "gitlab_token",
    "slack_token", "stripe_key", "openai_key", "google_api_key",
    "private_key", "jwt", NULL
};


/* --- small helpers ---------------------------------------------------------- */

const char *
ag_effect_name(ag_effect_t e)
{
    switch (e) {
    case AG_ALLOW:
        return "allow";
    case AG_HOLD:
        return "hold";
    case AG_DENY:
        return "deny";
    default:
        return "none";
    }
}


int64_t
ag_duration_parse(const char *s, size_t len)
{
    size_t   i;
    int64_t  v, unit;

    if (s == NULL || len < 2 || len > 20) {
        return -1;
    }

    switch (s[len - 1]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    default:
        return -1;
    }

    v = 0;
    for (i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (v > (INT64_MAX / unit - 9) / 10) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }

    return v * unit;
}


static int
ag_cmp_name(const char *a, const char *b, size_t blen)
{
    size_t  alen = strlen(a), n;
    int     c;

    n = alen < blen ? alen : blen;
    c = n ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : (alen > blen);
}


/* Every named thing (tool, agent, group, intent, rule) starts with its name,
   so one sorted array of pointers and one search serve them all. */
static int
ag_sort_by_name(const void *a, const void *b)
{
    return strcmp(**(const char *const *const *) a,
                  **(const char *const *const *) b);
}


static void *
ag_find(void *const *sorted, size_t n, const char *name, size_t len)
{
    size_t  lo, hi, mid;
    int     c;

    lo = 0;
    hi = n;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = ag_cmp_name(*(const char *const *) sorted[mid], name, len);
        if (c == 0) {
            return sorted[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}


static int
ag_names_has(const ag_names_t *l, const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        if (ag_cmp_name(l->v[i], s, len) == 0) {
            return 1;
        }
    }
    return 0;
}


static int
ag_globs_match(const ag_globs_t *l, const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        if (ag_glob_match(l->v[i], s, len)) {
            return 1;
        }
    }
    return 0;
}


/* Names appear in URLs (/agentgov/v1/agents/<name>/suspend), in delegation
   chains ("root>child") and in headers: a small alphabet keeps them plain,
   and the first character may not be '.', so "." and ".." are no names. */
static int
ag_name_ok(const char *s)
{
    size_t  i;

    if (s[0] == '.' || s[0] == '-' || s[0] == ':' || s[0] == '@') {
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9')
              || strchr("._:@-", s[i]) != NULL))
        {
            return 0;
        }
    }
    return i > 0 && i <= AG_NAME_MAX;
}


static int
ag_token_ok(const char *s)
{
    size_t  i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9')
              || strchr("!#$%&'*+-.^_`|~", s[i]) != NULL))
        {
            return 0;
        }
    }
    return i > 0;
}


static int
ag_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}


/* --- validation helpers: each reports at the path c holds --------------------- */

static int
ag_check_keys(ag_compile_t *c, json_t *obj, const char *const *allowed,
    const char *what)
{
    const char  *key;
    json_t      *v;
    size_t       i;

    json_object_foreach(obj, key, v) {
        for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; i++) {
            /* void */
        }
        if (allowed[i] == NULL) {
            (void) ag_cpush(c, key);
            return ag_cerror(c, "unknown key%s%s", what ? " " : "",
                             what ? what : "");
        }
    }
    return 0;
}


static int
ag_want_object(ag_compile_t *c, json_t *v)
{
    return json_is_object(v) ? 0 : ag_cerror(c, "expected an object");
}


static int
ag_want_string(ag_compile_t *c, json_t *v, const char **out)
{
    *out = json_string_value(v);
    if (*out == NULL || **out == '\0') {
        return ag_cerror(c, "expected a non-empty string");
    }

    /* the engine reads these as C strings: a \u0000 would cut them short */
    if (strlen(*out) != json_string_length(v)) {
        return ag_cerror(c, "a string may not contain \\u0000");
    }
    return 0;
}


static int
ag_want_name(ag_compile_t *c, const char *s)
{
    if (!ag_name_ok(s)) {
        return ag_cerror(c, "invalid name \"%s\" (1 to %d letters, digits "
                         "and . _ : @ -, not starting with . : @ -)", s,
                         AG_NAME_MAX);
    }
    return 0;
}


static int
ag_want_bool(ag_compile_t *c, json_t *v, int *out)
{
    if (!json_is_boolean(v)) {
        return ag_cerror(c, "expected true or false");
    }
    *out = json_is_true(v);
    return 0;
}


static int
ag_want_int(ag_compile_t *c, json_t *v, int64_t min, int64_t max,
    int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min
        || json_integer_value(v) > max)
    {
        return ag_cerror(c, "expected an integer from %lld to %lld",
                         (long long) min, (long long) max);
    }
    *out = (int64_t) json_integer_value(v);
    return 0;
}


#define AG_DURATION_MAX  (INT64_C(3650) * 86400)


static int
ag_want_duration(ag_compile_t *c, json_t *v, int64_t *out)
{
    int64_t  d;

    d = json_is_string(v) ? ag_duration_parse(json_string_value(v),
                                              json_string_length(v)) : -1;
    if (d < 0) {
        return ag_cerror(c, "expected a duration like \"90s\", \"10m\", "
                         "\"1h\" or \"2d\"");
    }
    if (d == 0) {
        return ag_cerror(c, "a duration must be longer than 0");
    }
    /* so that sums and multiples of durations (max_lifetime = 4 * max_ttl,
       now + ttl) can never overflow */
    if (d > AG_DURATION_MAX) {
        return ag_cerror(c, "a duration must be at most 3650d");
    }
    *out = d;
    return 0;
}


/* A string or (array_ok) a non-empty array of strings; each non-empty. */
static int
ag_want_strings(ag_compile_t *c, json_t *v, int single_ok, ag_names_t *out)
{
    size_t   i, old;
    json_t  *e;

    if (single_ok && json_is_string(v)) {
        out->v = ag_pool_alloc(c->pool, sizeof(char *));
        if (out->v == NULL) {
            return ag_cerror(c, "out of memory");
        }
        out->n = 1;
        return ag_want_string(c, v, &out->v[0]);
    }

    if (!json_is_array(v) || (single_ok && json_array_size(v) == 0)) {
        return ag_cerror(c, single_ok ? "expected a string or a non-empty "
                                        "array of strings"
                                      : "expected an array of strings");
    }

    out->n = json_array_size(v);
    out->v = ag_pool_alloc(c->pool, (out->n + 1) * sizeof(char *));
    if (out->v == NULL) {
        return ag_cerror(c, "out of memory");
    }
    json_array_foreach(v, i, e) {
        old = ag_cpush_index(c, i);
        if (ag_want_string(c, e, &out->v[i]) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }
    return 0;
}


/* Names that must be defined: kind is "tool", "agent", "intent", "group". */
static int
ag_want_defined(ag_compile_t *c, json_t *v, int single_ok, void *const *sorted,
    size_t n, const char *kind, ag_names_t *out)
{
    size_t  i, old;

    if (ag_want_strings(c, v, single_ok, out) != 0) {
        return -1;
    }
    for (i = 0; i < out->n; i++) {
        if (ag_find(sorted, n, out->v[i], strlen(out->v[i])) == NULL) {
            old = json_is_array(v) ? ag_cpush_index(c, i) : c->plen;
            ag_cerror(c, "undefined %s \"%s\"", kind, out->v[i]);
            ag_cpop(c, old);
            return -1;
        }
    }
    return 0;
}


static int
ag_want_globs(ag_compile_t *c, json_t *v, int lower, ag_globs_t *out)
{
    ag_names_t  l;
    size_t      i, j, old;
    char        perr[256], *s;

    if (ag_want_strings(c, v, 1, &l) != 0) {
        return -1;
    }
    out->n = l.n;
    out->v = ag_pool_alloc(c->pool, l.n * sizeof(ag_glob_t *));
    out->src = l.v;
    if (out->v == NULL) {
        return ag_cerror(c, "out of memory");
    }
    for (i = 0; i < l.n; i++) {
        s = ag_pool_strndup(c->pool, l.v[i], strlen(l.v[i]));
        if (s == NULL) {
            return ag_cerror(c, "out of memory");
        }
        for (j = 0; lower && s[j] != '\0'; j++) {
            s[j] = (s[j] >= 'A' && s[j] <= 'Z') ? s[j] + 32 : s[j];
        }
        out->src[i] = s;
        out->v[i] = ag_glob_compile(c->pool, s, strlen(s), perr, sizeof(perr));
        if (out->v[i] == NULL) {
            old = json_is_array(v) ? ag_cpush_index(c, i) : c->plen;
            ag_cerror(c, "%s", perr);
            ag_cpop(c, old);
            return -1;
        }
    }
    return 0;
}


/* Sorted array of pointers to n elements of size sz starting at base. */
static void **
ag_index_names(ag_pool_t *pool, void *base, size_t n, size_t sz)
{
    void   **a;
    size_t   i;

    a = ag_pool_alloc(pool, (n + 1) * sizeof(void *));
    if (a == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        a[i] = (char *) base + i * sz;
    }
    qsort(a, n, sizeof(void *), ag_sort_by_name);
    return a;
}


/* --- strip, secret_patterns ----------------------------------------------------- */

static int
ag_parse_strip(ag_compile_t *c, json_t *v, ag_names_t *headers,
    ag_names_t *query)
{
    static const char *const keys[] = { "headers", "query", NULL };
    size_t   i, old;
    json_t  *e;

    if (ag_want_object(c, v) != 0 || ag_check_keys(c, v, keys, NULL) != 0) {
        return -1;
    }

    if ((e = json_object_get(v, "headers")) != NULL) {
        old = ag_cpush(c, "headers");
        if (ag_want_strings(c, e, 0, headers) != 0) {
            return -1;
        }
        for (i = 0; i < headers->n; i++) {
            if (!ag_token_ok(headers->v[i])) {
                (void) ag_cpush_index(c, i);
                return ag_cerror(c, "invalid header name");
            }
        }
        ag_cpop(c, old);
    }

    if ((e = json_object_get(v, "query")) != NULL) {
        old = ag_cpush(c, "query");
        if (ag_want_strings(c, e, 0, query) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }
    return 0;
}


static int
ag_parse_secret_patterns(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    const char  *key;
    json_t      *e;
    size_t       n, i, old;
    char         perr[256];

    if (ag_want_object(c, v) != 0) {
        return -1;
    }

    n = json_object_size(v);
    p->secret_names.v = ag_pool_alloc(c->pool, (n + 1) * sizeof(char *));
    p->secret_regexes.v = ag_pool_alloc(c->pool, (n + 1) * sizeof(char *));
    if (p->secret_names.v == NULL || p->secret_regexes.v == NULL) {
        return ag_cerror(c, "out of memory");
    }

    json_object_foreach(v, key, e) {
        old = ag_cpush(c, key);
        if (ag_want_name(c, key) != 0) {
            return -1;
        }
        for (i = 0; ag_builtin_secrets[i] != NULL; i++) {
            if (strcmp(ag_builtin_secrets[i], key) == 0) {
                return ag_cerror(c, "\"%s\" is a built-in pattern", key);
            }
        }
        if (ag_want_string(c, e, &p->secret_regexes.v[p->secret_names.n])
            != 0)
        {
            return -1;
        }
        if (ag_regex_check(json_string_value(e), json_string_length(e), perr,
                           sizeof(perr)) != 0)
        {
            return ag_cerror(c, "%s", perr);
        }
        p->secret_names.v[p->secret_names.n] = key;
        p->secret_regexes.n = ++p->secret_names.n;
        ag_cpop(c, old);
    }
    return 0;
}


/* --- tools ---------------------------------------------------------------------- */

static int
ag_parse_cred_header(ag_compile_t *c, json_t *cred, ag_tool_t *t,
    const char *placeholder)
{
    json_t  *e;
    size_t   old;

    t->cred_header = "Authorization";
    if ((e = json_object_get(cred, "header")) != NULL) {
        old = ag_cpush(c, "header");
        if (ag_want_string(c, e, &t->cred_header) != 0) {
            return -1;
        }
        if (!ag_token_ok(t->cred_header)) {
            return ag_cerror(c, "invalid header name");
        }
        ag_cpop(c, old);
    }

    t->cred_format = strcmp(placeholder, "{token}") == 0 ? "Bearer {token}"
                                                        : "Bearer {secret}";
    if ((e = json_object_get(cred, "format")) != NULL) {
        old = ag_cpush(c, "format");
        if (ag_want_string(c, e, &t->cred_format) != 0) {
            return -1;
        }
        if (strstr(t->cred_format, placeholder) == NULL) {
            return ag_cerror(c, "must contain %s", placeholder);
        }
        if (!ag_printable(t->cred_format)) {
            return ag_cerror(c, "control characters are not allowed");
        }
        ag_cpop(c, old);
    }
    return 0;
}


static int
ag_parse_credential(ag_compile_t *c, json_t *cred, ag_tool_t *t)
{
    static const char *const jwt_keys[] = {
        "type", "audience", "ttl", "header", "format", NULL
    };
    static const char *const secret_keys[] = {
        "type", "secret", "header", "format", NULL
    };
    const char  *type;
    json_t      *e;
    size_t       old;
    int          jwt;

    if (ag_want_object(c, cred) != 0) {
        return -1;
    }

    old = ag_cpush(c, "type");
    type = json_string_value(json_object_get(cred, "type"));
    if (type == NULL || (strcmp(type, "jwt") != 0
                         && strcmp(type, "secret") != 0))
    {
        return ag_cerror(c, "expected one of jwt, secret");
    }
    ag_cpop(c, old);

    jwt = (type[0] == 'j');
    if (ag_check_keys(c, cred, jwt ? jwt_keys : secret_keys,
                      jwt ? "for a jwt credential" : "for a secret credential")
        != 0)
    {
        return -1;
    }

    if (jwt) {
        t->cred_type = AG_CRED_JWT;
        old = ag_cpush(c, "audience");
        if (ag_want_string(c, json_object_get(cred, "audience"),
                           &t->cred_audience) != 0)
        {
            return -1;
        }
        ag_cpop(c, old);
        t->cred_ttl = 60;
        if ((e = json_object_get(cred, "ttl")) != NULL) {
            old = ag_cpush(c, "ttl");
            if (ag_want_duration(c, e, &t->cred_ttl) != 0) {
                return -1;
            }
            if (t->cred_ttl > 300) {
                return ag_cerror(c, "at most 300s");
            }
            ag_cpop(c, old);
        }
        return ag_parse_cred_header(c, cred, t, "{token}");
    }

    t->cred_type = AG_CRED_SECRET;
    old = ag_cpush(c, "secret");
    if (ag_want_string(c, json_object_get(cred, "secret"), &t->cred_secret)
        != 0 || ag_want_name(c, t->cred_secret) != 0)
    {
        return -1;
    }
    ag_cpop(c, old);
    return ag_parse_cred_header(c, cred, t, "{secret}");
}


/* "tickets.internal" or "*.example.org": lower-cased into out. */
static int
ag_host_ok(const char *s, char *out, size_t outlen)
{
    size_t  i, label;

    if (strncmp(s, "*.", 2) == 0) {
        memcpy(out, "*.", 2);
        i = 2;
    } else {
        i = 0;
    }
    for (label = 0; s[i] != '\0' && i < outlen - 1; i++) {
        char ch = (s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i];

        if (ch == '.') {
            if (label == 0) {
                return 0;
            }
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
                   || ch == '-' || ch == '_')
        {
            label++;
        } else {
            return 0;
        }
        out[i] = ch;
    }
    out[i] = '\0';
    return s[i] == '\0' && label > 0;
}


static int
ag_parse_hosts(ag_compile_t *c, json_t *v, ag_tool_t *t)
{
    ag_names_t  l;
    size_t      i, old;
    char        buf[256];
    char      **hosts;

    if (ag_want_strings(c, v, 0, &l) != 0) {
        return -1;
    }
    hosts = (char **) l.v;
    for (i = 0; i < l.n; i++) {
        if (!ag_host_ok(l.v[i], buf, sizeof(buf))) {
            old = ag_cpush_index(c, i);
            ag_cerror(c, "expected a host name without port, or *.domain");
            ag_cpop(c, old);
            return -1;
        }
        hosts[i] = ag_pool_strndup(c->pool, buf, strlen(buf));
        if (hosts[i] == NULL) {
            return ag_cerror(c, "out of memory");
        }
    }
    t->hosts = (const char *const *) l.v;
    t->nhosts = l.n;
    return 0;
}


static int
ag_parse_upstream(ag_compile_t *c, json_t *v, ag_tool_t *t)
{
    const char  *s = NULL, *h;

    if (ag_want_string(c, v, &s) != 0) {
        return -1;
    }
    h = strncmp(s, "http://", 7) == 0 ? s + 7
        : (strncmp(s, "https://", 8) == 0 ? s + 8 : NULL);
    if (h == NULL || *h == '\0' || *h == '/' || s[strlen(s) - 1] == '/'
        || strpbrk(s, " ?#\"\\") != NULL || !ag_printable(s))
    {
        return ag_cerror(c, "expected http:// or https:// and a host, "
                         "without a trailing '/', query or fragment");
    }
    t->upstream = s;
    return 0;
}


static int
ag_parse_allow_secrets(ag_compile_t *c, ag_policy_t *p, json_t *v,
    ag_tool_t *t)
{
    ag_names_t  l;
    size_t      i, j, old;

    if (ag_want_strings(c, v, 0, &l) != 0) {
        return -1;
    }
    for (i = 0; i < l.n; i++) {
        for (j = 0; ag_builtin_secrets[j] != NULL
                    && strcmp(ag_builtin_secrets[j], l.v[i]) != 0; j++)
        {
            /* void */
        }
        if (ag_builtin_secrets[j] == NULL
            && !ag_names_has(&p->secret_names, l.v[i], strlen(l.v[i])))
        {
            old = ag_cpush_index(c, i);
            ag_cerror(c, "undefined secret pattern \"%s\"", l.v[i]);
            ag_cpop(c, old);
            return -1;
        }
    }
    t->allow_secrets = (const char *const *) l.v;
    t->nallow_secrets = l.n;
    return 0;
}


static int
ag_parse_pins(ag_compile_t *c, json_t *v, ag_tool_t *t)
{
    const char  *key, *s;
    json_t      *e;
    size_t       i, n, old;
    char        *hex;
    const char **names, **sums;

    if (ag_want_object(c, v) != 0) {
        return -1;
    }
    n = json_object_size(v);
    names = ag_pool_alloc(c->pool, (n + 1) * sizeof(char *));
    sums = ag_pool_alloc(c->pool, (n + 1) * sizeof(char *));
    if (names == NULL || sums == NULL) {
        return ag_cerror(c, "out of memory");
    }

    n = 0;
    json_object_foreach(v, key, e) {
        old = ag_cpush(c, key);
        s = json_string_value(e);
        if (s == NULL || json_string_length(e) != 64
            || strspn(s, "0123456789abcdefABCDEF") != 64)
        {
            return ag_cerror(c, "expected a SHA-256 in hex (64 characters)");
        }
        hex = ag_pool_strndup(c->pool, s, 64);
        if (hex == NULL) {
            return ag_cerror(c, "out of memory");
        }
        for (i = 0; i < 64; i++) {
            hex[i] = (hex[i] >= 'A' && hex[i] <= 'F') ? hex[i] + 32 : hex[i];
        }
        names[n] = key;
        sums[n++] = hex;
        ag_cpop(c, old);
    }
    t->pin_names = names;
    t->pin_sha256 = sums;
    t->npins = n;
    return 0;
}


static int
ag_parse_tool_key(ag_compile_t *c, ag_policy_t *p, const char *key, json_t *v,
    ag_tool_t *t)
{
    ag_names_t  h, q;

    if (strcmp(key, "hosts") == 0) {
        return ag_parse_hosts(c, v, t);
    }
    if (strcmp(key, "upstream") == 0) {
        return ag_parse_upstream(c, v, t);
    }
    if (strcmp(key, "protocol") == 0) {
        if (!json_is_string(v) || (strcmp(json_string_value(v), "http") != 0
                                   && strcmp(json_string_value(v), "mcp") != 0))
        {
            return ag_cerror(c, "expected one of http, mcp");
        }
        t->mcp = json_string_value(v)[0] == 'm';
        return 0;
    }
    if (strcmp(key, "credential") == 0) {
        return ag_parse_credential(c, v, t);
    }
    if (strcmp(key, "strip") == 0) {
        memset(&h, 0, sizeof(h));
        memset(&q, 0, sizeof(q));
        if (ag_parse_strip(c, v, &h, &q) != 0) {
            return -1;
        }
        t->strip_headers = (const char *const *) h.v;
        t->nstrip_headers = h.n;
        t->strip_query = (const char *const *) q.v;
        t->nstrip_query = q.n;
        return 0;
    }
    if (strcmp(key, "allow_secrets") == 0) {
        return ag_parse_allow_secrets(c, p, v, t);
    }
    return ag_parse_pins(c, v, t);
}


static int
ag_parse_tools(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    static const char *const keys[] = {
        "hosts", "upstream", "protocol", "credential", "strip",
        "allow_secrets", "pins", NULL
    };
    const char  *name, *key;
    json_t      *tv, *e;
    size_t       old, old2;
    ag_tool_t   *t;

    if (ag_want_object(c, v) != 0) {
        return -1;
    }
    p->tools = ag_pool_alloc(c->pool, (json_object_size(v) + 1)
                                      * sizeof(ag_tool_int_t));
    if (p->tools == NULL) {
        return ag_cerror(c, "out of memory");
    }

    json_object_foreach(v, name, tv) {
        old = ag_cpush(c, name);
        if (ag_want_name(c, name) != 0 || ag_want_object(c, tv) != 0
            || ag_check_keys(c, tv, keys, NULL) != 0)
        {
            return -1;
        }
        t = &p->tools[p->ntools++].pub;
        t->name = name;
        json_object_foreach(tv, key, e) {
            old2 = ag_cpush(c, key);
            if (ag_parse_tool_key(c, p, key, e, t) != 0) {
                return -1;
            }
            ag_cpop(c, old2);
        }
        ag_cpop(c, old);
    }

    p->tools_by_name = (ag_tool_int_t **)
        ag_index_names(c->pool, p->tools, p->ntools, sizeof(ag_tool_int_t));
    return p->tools_by_name == NULL ? ag_cerror(c, "out of memory") : 0;
}


/* --- identities: agents, groups, admins, auditors ---------------------------------- */

static int
ag_parse_claims(ag_compile_t *c, json_t *v)
{
    const char  *key;
    json_t      *e;
    size_t       old;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        return ag_cerror(c, "expected an object of claims");
    }
    json_object_foreach(v, key, e) {
        if (!json_is_string(e)) {
            old = ag_cpush(c, key);
            ag_cerror(c, "expected a string");
            ag_cpop(c, old);
            return -1;
        }
    }
    return 0;
}


/* obj holds "spiffe" or "jwt" (exactly one). */
static int
ag_parse_matcher(ag_compile_t *c, json_t *obj, ag_matcher_t *m)
{
    json_t      *s, *j;
    size_t       old;
    const char  *id = NULL;
    char         perr[256];

    s = json_object_get(obj, "spiffe");
    j = json_object_get(obj, "jwt");
    if ((s == NULL) == (j == NULL)) {
        return ag_cerror(c, "expected exactly one of spiffe, jwt");
    }

    if (j != NULL) {
        old = ag_cpush(c, "jwt");
        if (ag_parse_claims(c, j) != 0) {
            return -1;
        }
        ag_cpop(c, old);
        m->claims = j;
        return 0;
    }

    old = ag_cpush(c, "spiffe");
    if (ag_want_string(c, s, &id) != 0) {
        return -1;
    }
    if (strncmp(id, "spiffe://", 9) != 0 || !ag_printable(id)) {
        return ag_cerror(c, "expected a spiffe:// ID");
    }
    m->spiffe = id;
    if (strchr(id, '*') != NULL) {
        m->glob = ag_glob_compile(c->pool, id, strlen(id), perr, sizeof(perr));
        if (m->glob == NULL) {
            return ag_cerror(c, "%s", perr);
        }
    }
    ag_cpop(c, old);
    return 0;
}


static int
ag_parse_agent(ag_compile_t *c, const char *name, json_t *v, ag_agent_int_t *a)
{
    static const char *const keys[] = {
        "spiffe", "jwt", "owner", "max_tasks", "max_pending", NULL
    };
    json_t   *e;
    size_t    old;
    int64_t   n;

    if (ag_want_name(c, name) != 0 || ag_want_object(c, v) != 0
        || ag_check_keys(c, v, keys, NULL) != 0
        || ag_parse_matcher(c, v, &a->m) != 0)
    {
        return -1;
    }

    a->pub.name = name;
    a->pub.max_tasks = 100;
    a->pub.max_pending = 20;

    old = ag_cpush(c, "owner");
    if (json_object_get(v, "owner") == NULL) {
        return ag_cerror(c, "required");
    }
    if (ag_want_string(c, json_object_get(v, "owner"), &a->pub.owner) != 0) {
        return -1;
    }
    ag_cpop(c, old);

    if ((e = json_object_get(v, "max_tasks")) != NULL) {
        old = ag_cpush(c, "max_tasks");
        if (ag_want_int(c, e, 1, 1000000, &n) != 0) {
            return -1;
        }
        a->pub.max_tasks = (int) n;
        ag_cpop(c, old);
    }
    if ((e = json_object_get(v, "max_pending")) != NULL) {
        old = ag_cpush(c, "max_pending");
        if (ag_want_int(c, e, 0, 1000000, &n) != 0) {
            return -1;
        }
        a->pub.max_pending = (int) n;
        ag_cpop(c, old);
    }
    return 0;
}


static int
ag_sort_by_spiffe(const void *a, const void *b)
{
    return strcmp((*(ag_agent_int_t *const *) a)->m.spiffe,
                  (*(ag_agent_int_t *const *) b)->m.spiffe);
}


/* Two agents with the same identity could never be told apart. */
static int
ag_agents_distinct(ag_compile_t *c, ag_policy_t *p)
{
    size_t           i, j, old;
    ag_agent_int_t  *a, *b;

    for (i = 1; i < p->nagents_exact; i++) {
        a = p->agents_exact[i - 1];
        b = p->agents_exact[i];
        if (strcmp(a->m.spiffe, b->m.spiffe) == 0) {
            if (a > b) {
                ag_agent_int_t *t = a; a = b; b = t;
            }
            old = ag_cpush(c, b->pub.name);
            ag_cpush(c, "spiffe");
            ag_cerror(c, "same identity as agent \"%s\"", a->pub.name);
            ag_cpop(c, old);
            return -1;
        }
    }

    for (i = 0; i < p->nagents; i++) {
        for (j = 0; p->agents[i].m.claims != NULL && j < i; j++) {
            if (p->agents[j].m.claims != NULL
                && json_equal(p->agents[i].m.claims, p->agents[j].m.claims))
            {
                old = ag_cpush(c, p->agents[i].pub.name);
                ag_cpush(c, "jwt");
                ag_cerror(c, "same identity as agent \"%s\"",
                          p->agents[j].pub.name);
                ag_cpop(c, old);
                return -1;
            }
        }
    }
    return 0;
}


static int
ag_parse_agents(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    const char      *name;
    json_t          *av;
    size_t           i, n, old;
    ag_agent_int_t  *a;

    if (ag_want_object(c, v) != 0) {
        return -1;
    }
    n = json_object_size(v);
    p->agents = ag_pool_alloc(c->pool, (n + 1) * sizeof(ag_agent_int_t));
    p->agents_exact = ag_pool_alloc(c->pool, (n + 1) * sizeof(void *));
    p->agents_other = ag_pool_alloc(c->pool, (n + 1) * sizeof(void *));
    if (p->agents == NULL || p->agents_exact == NULL
        || p->agents_other == NULL)
    {
        return ag_cerror(c, "out of memory");
    }

    json_object_foreach(v, name, av) {
        old = ag_cpush(c, name);
        if (ag_parse_agent(c, name, av, &p->agents[p->nagents]) != 0) {
            return -1;
        }
        p->nagents++;
        ag_cpop(c, old);
    }

    for (i = 0; i < p->nagents; i++) {
        a = &p->agents[i];
        if (a->m.spiffe != NULL && a->m.glob == NULL) {
            p->agents_exact[p->nagents_exact++] = a;
        } else {
            p->agents_other[p->nagents_other++] = a;
        }
    }
    qsort(p->agents_exact, p->nagents_exact, sizeof(void *), ag_sort_by_spiffe);

    p->agents_by_name = (ag_agent_int_t **)
        ag_index_names(c->pool, p->agents, p->nagents, sizeof(ag_agent_int_t));
    if (p->agents_by_name == NULL) {
        return ag_cerror(c, "out of memory");
    }
    return ag_agents_distinct(c, p);
}


static int
ag_parse_group(ag_compile_t *c, json_t *v, ag_group_t *g)
{
    static const char *const keys[] = { "spiffe", "jwt", NULL };
    size_t   i, old;
    json_t  *e;

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return ag_cerror(c, "expected a non-empty array of {\"spiffe\": ...} "
                         "or {\"jwt\": {...}}");
    }
    g->m = ag_pool_alloc(c->pool, json_array_size(v) * sizeof(ag_matcher_t));
    if (g->m == NULL) {
        return ag_cerror(c, "out of memory");
    }
    json_array_foreach(v, i, e) {
        old = ag_cpush_index(c, i);
        if (ag_want_object(c, e) != 0 || ag_check_keys(c, e, keys, NULL) != 0
            || ag_parse_matcher(c, e, &g->m[i]) != 0)
        {
            return -1;
        }
        ag_cpop(c, old);
    }
    g->n = json_array_size(v);
    return 0;
}


static int
ag_parse_groups(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    const char  *name;
    json_t      *gv;
    size_t       old;
    ag_group_t  *g;

    if (ag_want_object(c, v) != 0) {
        return -1;
    }
    p->groups = ag_pool_alloc(c->pool, (json_object_size(v) + 1)
                                       * sizeof(ag_group_t));
    if (p->groups == NULL) {
        return ag_cerror(c, "out of memory");
    }

    json_object_foreach(v, name, gv) {
        old = ag_cpush(c, name);
        g = &p->groups[p->ngroups];
        g->name = name;
        if (ag_want_name(c, name) != 0 || ag_parse_group(c, gv, g) != 0) {
            return -1;
        }
        p->ngroups++;
        ag_cpop(c, old);
    }

    p->groups_by_name = (ag_group_t **)
        ag_index_names(c->pool, p->groups, p->ngroups, sizeof(ag_group_t));
    return p->groups_by_name == NULL ? ag_cerror(c, "out of memory") : 0;
}


/* --- intents ---------------------------------------------------------------------- */

static int
ag_parse_budget(ag_compile_t *c, json_t *v, ag_intent_t *in)
{
    static const char *const keys[] = { "calls", "rate", NULL };
    json_t      *e;
    size_t       old, i;
    const char  *s;
    int64_t      n;
    char         unit;

    if (ag_want_object(c, v) != 0 || ag_check_keys(c, v, keys, NULL) != 0) {
        return -1;
    }
    if (json_object_size(v) == 0) {
        return ag_cerror(c, "expected calls, rate or both");
    }

    if ((e = json_object_get(v, "calls")) != NULL) {
        old = ag_cpush(c, "calls");
        if (ag_want_int(c, e, 1, INT64_C(1000000000000), &in->budget_calls)
            != 0)
        {
            return -1;
        }
        ag_cpop(c, old);
    }

    if ((e = json_object_get(v, "rate")) != NULL) {
        old = ag_cpush(c, "rate");
        s = json_string_value(e);
        for (i = 0, n = 0; s != NULL && i < 9 && s[i] >= '0' && s[i] <= '9';
             i++)
        {
            n = n * 10 + (s[i] - '0');
        }
        unit = s != NULL && s[i] == '/' ? s[i + 1] : '\0';
        if (n <= 0 || s[0] == '0' || unit == '\0' || s[i + 2] != '\0'
            || strchr("smh", unit) == NULL)
        {
            return ag_cerror(c, "expected a rate like \"20/s\", \"100/m\" or "
                             "\"1000/h\"");
        }
        in->budget_rate_n = n;
        in->budget_rate_per = unit == 's' ? 1 : (unit == 'm' ? 60 : 3600);
        ag_cpop(c, old);
    }
    return 0;
}


static int
ag_parse_intent_key(ag_compile_t *c, ag_policy_t *p, const char *key,
    json_t *v, ag_intent_t *in)
{
    ag_names_t  l;
    int64_t     n;

    if (strcmp(key, "agents") == 0 || strcmp(key, "tools") == 0) {
        int agents = key[0] == 'a';

        if (ag_want_defined(c, v, 0,
                            agents ? (void *const *) p->agents_by_name
                                   : (void *const *) p->tools_by_name,
                            agents ? p->nagents : p->ntools,
                            agents ? "agent" : "tool", &l) != 0)
        {
            return -1;
        }
        if (agents) {
            in->agents = (const char *const *) l.v;
            in->nagents = l.n;
        } else {
            in->tools = (const char *const *) l.v;
            in->ntools = l.n;
        }
        return 0;
    }
    if (strcmp(key, "max_ttl") == 0) {
        return ag_want_duration(c, v, &in->max_ttl);
    }
    if (strcmp(key, "max_lifetime") == 0) {
        return ag_want_duration(c, v, &in->max_lifetime);
    }
    if (strcmp(key, "max_depth") == 0) {
        if (ag_want_int(c, v, 0, 64, &n) != 0) {
            return -1;
        }
        in->max_depth = (int) n;
        return 0;
    }
    return ag_parse_budget(c, v, in);
}


static int
ag_parse_intent(ag_compile_t *c, ag_policy_t *p, const char *name, json_t *v,
    ag_intent_t *in)
{
    static const char *const keys[] = {
        "agents", "tools", "max_ttl", "max_lifetime", "max_depth", "budget",
        NULL
    };
    static const char *const required[] = { "agents", "tools", "max_ttl",
                                            NULL };
    const char  *key;
    json_t      *e;
    size_t       i, old;

    if (ag_want_name(c, name) != 0 || ag_want_object(c, v) != 0
        || ag_check_keys(c, v, keys, NULL) != 0)
    {
        return -1;
    }
    for (i = 0; required[i] != NULL; i++) {
        if (json_object_get(v, required[i]) == NULL) {
            (void) ag_cpush(c, required[i]);
            return ag_cerror(c, "required");
        }
    }

    in->name = name;
    in->max_depth = 3;
    json_object_foreach(v, key, e) {
        old = ag_cpush(c, key);
        if (ag_parse_intent_key(c, p, key, e, in) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }

    if (in->max_lifetime == 0) {
        in->max_lifetime = 4 * in->max_ttl;
    } else if (in->max_lifetime < in->max_ttl) {
        (void) ag_cpush(c, "max_lifetime");
        return ag_cerror(c, "shorter than max_ttl");
    }
    return 0;
}


static int
ag_parse_intents(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    const char  *name;
    json_t      *iv;
    size_t       old;

    if (ag_want_object(c, v) != 0) {
        return -1;
    }
    p->intents = ag_pool_alloc(c->pool, (json_object_size(v) + 1)
                                        * sizeof(ag_intent_t));
    if (p->intents == NULL) {
        return ag_cerror(c, "out of memory");
    }

    json_object_foreach(v, name, iv) {
        old = ag_cpush(c, name);
        if (ag_parse_intent(c, p, name, iv, &p->intents[p->nintents]) != 0) {
            return -1;
        }
        p->nintents++;
        ag_cpop(c, old);
    }

    p->intents_by_name = (ag_intent_t **)
        ag_index_names(c->pool, p->intents, p->nintents, sizeof(ag_intent_t));
    return p->intents_by_name == NULL ? ag_cerror(c, "out of memory") : 0;
}


/* --- rules ------------------------------------------------------------------------- */

static const char *const ag_rule_keys[] = {
    "id", "effect", "mode", "reason", "tags", "agent", "owner", "intent",
    "tool", "method", "path", "host", "mcp", "when",
    "approvers", "timeout", "approvals", "separate_from_owner",
    "escalate_after", "escalate_to", "grant_ttl", "wait", NULL
};

#define AG_HOLD_KEYS  14        /* ag_rule_keys from here on are for holds */


static int
ag_parse_methods(ag_compile_t *c, json_t *v, ag_rule_int_t *r)
{
    size_t  i, old;

    if (ag_want_strings(c, v, 1, &r->methods) != 0) {
        return -1;
    }
    for (i = 0; i < r->methods.n; i++) {
        if (strspn(r->methods.v[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
            != strlen(r->methods.v[i]))
        {
            old = json_is_array(v) ? ag_cpush_index(c, i) : c->plen;
            ag_cerror(c, "expected an HTTP method in upper case");
            ag_cpop(c, old);
            return -1;
        }
    }
    return 0;
}


static int
ag_parse_path(ag_compile_t *c, json_t *v, ag_rule_int_t *r)
{
    static const char *const keys[] = { "regex", NULL };
    json_t  *re;
    char     perr[256];
    size_t   i, old;

    if (json_is_object(v)) {
        if (ag_check_keys(c, v, keys, NULL) != 0) {
            return -1;
        }
        old = ag_cpush(c, "regex");
        re = json_object_get(v, "regex");
        if (!json_is_string(re)) {
            return ag_cerror(c, "expected a string");
        }
        r->path_re = ag_regex_compile(c->pool, json_string_value(re),
                                      json_string_length(re), perr,
                                      sizeof(perr));
        if (r->path_re == NULL) {
            return ag_cerror(c, "%s", perr);
        }
        ag_cpop(c, old);
        return 0;
    }

    if (ag_want_globs(c, v, 0, &r->paths) != 0) {
        return -1;
    }
    for (i = 0; i < r->paths.n; i++) {
        const char *s = ag_glob_source(r->paths.v[i]);

        if (s[0] != '/' && s[0] != '*') {
            old = json_is_array(v) ? ag_cpush_index(c, i) : c->plen;
            ag_cerror(c, "a path glob starts with '/' or '*'");
            ag_cpop(c, old);
            return -1;
        }
    }
    return 0;
}


static int
ag_parse_mcp(ag_compile_t *c, json_t *v, ag_rule_int_t *r)
{
    static const char *const keys[] = {
        "method", "tool", "resource", "prompt", NULL
    };
    const char  *key;
    json_t      *e;
    size_t       old;
    ag_globs_t  *g;

    if (ag_want_object(c, v) != 0 || ag_check_keys(c, v, keys, NULL) != 0) {
        return -1;
    }
    if (json_object_size(v) == 0) {
        return ag_cerror(c, "expected method, tool, resource or prompt");
    }

    json_object_foreach(v, key, e) {
        old = ag_cpush(c, key);
        g = key[0] == 'm' ? &r->mcp_method
            : key[0] == 't' ? &r->mcp_tool
            : key[0] == 'r' ? &r->mcp_resource : &r->mcp_prompt;
        if (ag_want_globs(c, e, 0, g) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }
    return 0;
}


static int
ag_parse_groups_ref(ag_compile_t *c, ag_policy_t *p, json_t *v,
    const char *const **out, size_t *n)
{
    ag_names_t  l;

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return ag_cerror(c, "expected a non-empty array of group names");
    }
    if (ag_want_defined(c, v, 0, (void *const *) p->groups_by_name,
                        p->ngroups, "group", &l) != 0)
    {
        return -1;
    }
    *out = (const char *const *) l.v;
    *n = l.n;
    return 0;
}


static int
ag_parse_hold_key(ag_compile_t *c, ag_policy_t *p, const char *key, json_t *v,
    ag_rule_t *r)
{
    int64_t  n;

    if (strcmp(key, "approvers") == 0) {
        return ag_parse_groups_ref(c, p, v, &r->approvers, &r->napprovers);
    }
    if (strcmp(key, "escalate_to") == 0) {
        return ag_parse_groups_ref(c, p, v, &r->escalate_to, &r->nescalate_to);
    }
    if (strcmp(key, "timeout") == 0) {
        return ag_want_duration(c, v, &r->timeout);
    }
    if (strcmp(key, "escalate_after") == 0) {
        return ag_want_duration(c, v, &r->escalate_after);
    }
    if (strcmp(key, "grant_ttl") == 0) {
        return ag_want_duration(c, v, &r->grant_ttl);
    }
    if (strcmp(key, "approvals") == 0) {
        if (ag_want_int(c, v, 1, 100, &n) != 0) {
            return -1;
        }
        r->approvals = (int) n;
        return 0;
    }
    if (strcmp(key, "separate_from_owner") == 0) {
        return ag_want_bool(c, v, &r->separate_from_owner);
    }
    return ag_want_bool(c, v, &r->wait);
}


static int
ag_parse_rule_key(ag_compile_t *c, ag_policy_t *p, const char *key, json_t *v,
    ag_rule_int_t *r)
{
    ag_names_t  l;

    if (strcmp(key, "mode") == 0) {
        if (!json_is_string(v)
            || (strcmp(json_string_value(v), "enforce") != 0
                && strcmp(json_string_value(v), "monitor") != 0))
        {
            return ag_cerror(c, "expected one of enforce, monitor");
        }
        r->pub.mode = json_string_value(v)[0] == 'm' ? AG_MODE_MONITOR
                                                     : AG_MODE_ENFORCE;
        return 0;
    }
    if (strcmp(key, "reason") == 0) {
        return ag_want_string(c, v, &r->pub.reason);
    }
    if (strcmp(key, "tags") == 0) {
        if (ag_want_strings(c, v, 0, &l) != 0) {
            return -1;
        }
        r->pub.tags = (const char *const *) l.v;
        r->pub.ntags = l.n;
        return 0;
    }
    if (strcmp(key, "agent") == 0) {
        return ag_want_defined(c, v, 1, (void *const *) p->agents_by_name,
                               p->nagents, "agent", &r->agents);
    }
    if (strcmp(key, "intent") == 0) {
        return ag_want_defined(c, v, 1, (void *const *) p->intents_by_name,
                               p->nintents, "intent", &r->intents);
    }
    if (strcmp(key, "tool") == 0) {
        return ag_want_defined(c, v, 1, (void *const *) p->tools_by_name,
                               p->ntools, "tool", &r->tools);
    }
    if (strcmp(key, "owner") == 0) {
        return ag_want_strings(c, v, 1, &r->owners);
    }
    if (strcmp(key, "method") == 0) {
        return ag_parse_methods(c, v, r);
    }
    if (strcmp(key, "path") == 0) {
        return ag_parse_path(c, v, r);
    }
    if (strcmp(key, "host") == 0) {
        return ag_want_globs(c, v, 1, &r->hosts);
    }
    if (strcmp(key, "mcp") == 0) {
        return ag_parse_mcp(c, v, r);
    }
    if (strcmp(key, "when") == 0) {
        r->when = ag_when_compile(c, v);
        return r->when == NULL ? -1 : 0;
    }
    return ag_parse_hold_key(c, p, key, v, &r->pub);
}


static int
ag_parse_rule_head(ag_compile_t *c, json_t *v, ag_rule_int_t *r)
{
    static const char *const effects[] = { "allow", "hold", "deny", NULL };
    const char  *s;
    size_t       i, old;

    old = ag_cpush(c, "id");
    if (json_object_get(v, "id") == NULL) {
        return ag_cerror(c, "required");
    }
    if (ag_want_string(c, json_object_get(v, "id"), &r->pub.id) != 0
        || ag_want_name(c, r->pub.id) != 0)
    {
        return -1;
    }
    ag_cpop(c, old);

    old = ag_cpush(c, "effect");
    s = json_string_value(json_object_get(v, "effect"));
    for (i = 0; s != NULL && effects[i] != NULL && strcmp(s, effects[i]); i++) {
        /* void */
    }
    if (s == NULL || effects[i] == NULL) {
        return ag_cerror(c, "expected one of allow, deny, hold");
    }
    r->pub.effect = (ag_effect_t) (AG_ALLOW + i);
    ag_cpop(c, old);
    return 0;
}


static int
ag_rule_finish(ag_compile_t *c, ag_policy_t *p, ag_rule_int_t *r)
{
    const char  *fmt, *reads[AG_MAX_READS];
    size_t       i, n;
    char        *s;

    if (r->pub.effect == AG_HOLD) {
        if (r->pub.napprovers == 0) {
            (void) ag_cpush(c, "approvers");
            return ag_cerror(c, "required for a hold rule");
        }
        if ((r->pub.nescalate_to == 0) != (r->pub.escalate_after == 0)) {
            return ag_cerror(c, "escalate_after and escalate_to go together");
        }
        r->pub.approvals = r->pub.approvals ? r->pub.approvals : 1;
        r->pub.grant_ttl = r->pub.grant_ttl ? r->pub.grant_ttl : 600;
    }

    fmt = r->pub.effect == AG_DENY ? "denied by rule %s"
          : r->pub.effect == AG_HOLD ? "rule %s requires approval"
          : "allowed by rule %s";
    n = strlen(fmt) + strlen(r->pub.id);
    s = ag_pool_alloc(c->pool, n);
    if (s == NULL) {
        return ag_cerror(c, "out of memory");
    }
    snprintf(s, n, fmt, r->pub.id);
    r->own_reason = s;

    r->cls = (r->pub.effect == AG_DENY ? AG_C_DENY
              : r->pub.effect == AG_HOLD ? AG_C_HOLD : AG_C_ALLOW)
             + (r->pub.mode == AG_MODE_MONITOR ? AG_C_MDENY : 0);

    r->tool_idx = ag_pool_alloc(c->pool, (r->tools.n + 1) * sizeof(size_t));
    if (r->tool_idx == NULL) {
        return ag_cerror(c, "out of memory");
    }
    for (i = 0; i < r->tools.n; i++) {
        r->tool_idx[i] = (size_t) ((ag_tool_int_t *) ag_find(
                             (void *const *) p->tools_by_name, p->ntools,
                             r->tools.v[i], strlen(r->tools.v[i]))
                         - p->tools);
    }

    if (r->when != NULL) {
        n = ag_when_subjects(r->when, reads, AG_MAX_READS);
        r->pub.reads = ag_pool_alloc(c->pool, (n + 1) * sizeof(char *));
        if (r->pub.reads == NULL) {
            return ag_cerror(c, "out of memory");
        }
        memcpy((void *) r->pub.reads, reads, n * sizeof(char *));
        r->pub.nreads = n;
    }
    return 0;
}


static int
ag_parse_rule(ag_compile_t *c, ag_policy_t *p, json_t *v, ag_rule_int_t *r)
{
    const char  *key;
    json_t      *e;
    size_t       i, old;

    if (ag_want_object(c, v) != 0
        || ag_check_keys(c, v, ag_rule_keys, NULL) != 0
        || ag_parse_rule_head(c, v, r) != 0)
    {
        return -1;
    }
    r->json = v;

    json_object_foreach(v, key, e) {
        if (strcmp(key, "id") == 0 || strcmp(key, "effect") == 0) {
            continue;
        }
        old = ag_cpush(c, key);
        for (i = AG_HOLD_KEYS; ag_rule_keys[i] != NULL; i++) {
            if (strcmp(key, ag_rule_keys[i]) == 0 && r->pub.effect != AG_HOLD) {
                return ag_cerror(c, "only for hold rules");
            }
        }
        if (ag_parse_rule_key(c, p, key, e, r) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }

    return ag_rule_finish(c, p, r);
}


static int
ag_sort_rules_by_id(const void *a, const void *b)
{
    const ag_rule_int_t *x = *(ag_rule_int_t *const *) a;
    const ag_rule_int_t *y = *(ag_rule_int_t *const *) b;
    int                  c = strcmp(x->pub.id, y->pub.id);

    return c != 0 ? c : (x->pub.index < y->pub.index ? -1 : 1);
}


static int
ag_rules_unique(ag_compile_t *c, ag_policy_t *p)
{
    size_t          i, dup;
    ag_rule_int_t  *b;

    p->rules_by_id = ag_pool_alloc(c->pool, (p->nrules + 1) * sizeof(void *));
    if (p->rules_by_id == NULL) {
        return ag_cerror(c, "out of memory");
    }
    for (i = 0; i < p->nrules; i++) {
        p->rules_by_id[i] = &p->rules[i];
    }
    qsort(p->rules_by_id, p->nrules, sizeof(void *), ag_sort_rules_by_id);

    /* report the first repeat in file order */
    dup = p->nrules;
    for (i = 1; i < p->nrules; i++) {
        b = p->rules_by_id[i];
        if (strcmp(p->rules_by_id[i - 1]->pub.id, b->pub.id) == 0
            && b->pub.index < dup)
        {
            dup = b->pub.index;
        }
    }
    if (dup < p->nrules) {
        ag_cpush_index(c, dup);
        ag_cpush(c, "id");
        return ag_cerror(c, "duplicate rule id \"%s\"", p->rules[dup].pub.id);
    }
    return 0;
}


static int
ag_parse_rules(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    size_t   i, old;
    json_t  *e;

    if (!json_is_array(v)) {
        return ag_cerror(c, "expected an array");
    }
    p->rules = ag_pool_alloc(c->pool, (json_array_size(v) + 1)
                                      * sizeof(ag_rule_int_t));
    if (p->rules == NULL) {
        return ag_cerror(c, "out of memory");
    }

    json_array_foreach(v, i, e) {
        old = ag_cpush_index(c, i);
        p->rules[i].pub.index = i;
        if (ag_parse_rule(c, p, e, &p->rules[i]) != 0) {
            return -1;
        }
        p->nrules++;
        ag_cpop(c, old);
    }

    return ag_rules_unique(c, p);
}


/* --- the index ----------------------------------------------------------------------- */

/* One (tool, method) placement of a rule; sorted, runs of equal tool and
   method become buckets. */
typedef struct {
    long             tool;          /* index into p->tools; -1: any tool */
    const char      *method;        /* NULL: any method */
    ag_rule_int_t   *r;
} ag_place_t;


static int
ag_place_cmp(const void *a, const void *b)
{
    const ag_place_t  *x = a, *y = b;
    int                c;

    if (x->tool != y->tool) {
        return x->tool < y->tool ? -1 : 1;
    }
    if (x->method != y->method) {
        if (x->method == NULL || y->method == NULL) {
            return x->method == NULL ? -1 : 1;
        }
        c = strcmp(x->method, y->method);
        if (c != 0) {
            return c;
        }
    }
    if (x->r->cls != y->r->cls) {
        return x->r->cls < y->r->cls ? -1 : 1;
    }
    return x->r->pub.index < y->r->pub.index ? -1
           : (x->r->pub.index > y->r->pub.index);
}


/* Fill l from rules sorted by class and then file order, dropping repeats
   (a rule that lists the same tool or method twice, or two globs that lead
   to the same node). */
static int
ag_fill_rlist(ag_pool_t *pool, ag_rlist_t *l, ag_rule_int_t *const *r,
    size_t n)
{
    size_t  i, k;
    int     cls;

    l->r = ag_pool_alloc(pool, (n + 1) * sizeof(ag_rule_int_t *));
    if (l->r == NULL) {
        return -1;
    }
    for (i = 0, k = 0; i < n; i++) {
        if (k == 0 || l->r[k - 1] != r[i]) {
            l->r[k++] = r[i];
        }
    }
    for (i = 0, cls = 0; cls <= AG_NCLASS; cls++) {
        while (i < k && l->r[i]->cls < cls) {
            i++;
        }
        l->off[cls] = i;
    }
    return 0;
}


/* --- the path index of a large cell ---------------------------------------------------
 *
 * A small (tool, method) cell is scanned whole, every rule in file order.
 * A cell of more than AG_PX_MIN rules also files each rule in a trie
 * of path segments (split on '/'), at the node its path glob reaches by
 * its leading segments: a literal segment is an edge of its own, one with
 * '*' (not "**") is the node's star edge. A glob that runs out there is
 * filed in the node's "end" list; one that reaches a segment with "**" in
 * its node's "sub" list. A regex is filed in "sub" at the node of the whole
 * segments of its literal head (ag_regex_prefix). A rule with several globs
 * is filed once for each; one with no path, or a path that starts with
 * "**" or no literal, goes to "rest".
 *
 * For a call, the candidates are "rest", the "sub" rules of every node the
 * path's segments reach (following each matching literal edge and every
 * star edge) and the "end" rules of the nodes reached by all of them. A
 * glob matches segment by segment up to its first "**" ('*' never matches
 * '/', and a "**" that matches nothing takes its '/' along, so "/x/" "**"
 * still reaches node x for "/x"), and a regex's path starts with the whole
 * segments of its head: so every rule left out has a FALSE path test,
 * never DOUBT, and merging the candidates in file order gives the same
 * decision as the whole cell.
 *
 * The one exception is PCRE2's: a value that is not valid UTF-8 is doubted
 * by every regex, whatever it starts with. For a path with a byte >= 0x80
 * every regex rule of the cell is therefore a candidate too ("re").
 *
 * A rule may sit in several of the lists a call selects; the merge skips
 * repeats. When a path reaches more than AG_PX_ACTIVE nodes at one depth,
 * or selects more lists than AG_MAX_SRC, the cell is scanned whole: slower,
 * never different.
 */

#define AG_PX_MIN     32
#define AG_PX_ACTIVE  16            /* nodes reached at one depth, at most */

enum {
    AG_PK_SUB = 0,
    AG_PK_END
};

/* One segment of a glob or of a regex's head; s is NULL for one with '*'
   (a star edge). */
typedef struct {
    const char      *s;
    size_t           len;
} ag_tseg_t;

/* Where one glob or regex of a rule goes: the segments that lead there. */
typedef struct {
    const ag_tseg_t *seg;
    size_t           first;         /* into the build's segments */
    size_t           nseg;
    int              kind;          /* AG_PK_SUB or AG_PK_END */
    ag_rule_int_t   *r;
    ag_tnode_t      *node;          /* once inserted */
} ag_pkey_t;

typedef struct {
    ag_pool_t       *pool;
    ag_tnode_t     **nodes;         /* every node, to finish or to free */
    size_t           nnodes;
    size_t           cap;
    ag_tseg_t       *seg;
    size_t           nseg;
    size_t           scap;
    ag_pkey_t       *keys;
    size_t           nkeys;
    size_t           kcap;
} ag_tbuild_t;


static int
ag_bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int  c;

    c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : (alen > blen);
}


/* Room for one more element in a malloc'ed array of n: v itself, a bigger
   copy, or NULL (v is then unchanged). */
static void *
ag_grow(void *v, size_t n, size_t *cap, size_t size)
{
    void  *nv;

    if (n < *cap) {
        return v;
    }
    nv = realloc(v, (*cap ? 2 * *cap : 16) * size);
    if (nv != NULL) {
        *cap = *cap ? 2 * *cap : 16;
    }
    return nv;
}


static ag_tnode_t *
ag_tnode_new(ag_tbuild_t *tb)
{
    ag_tnode_t  *n, **v;

    v = ag_grow(tb->nodes, tb->nnodes, &tb->cap, sizeof(ag_tnode_t *));
    if (v == NULL) {
        return NULL;
    }
    tb->nodes = v;
    n = ag_pool_alloc(tb->pool, sizeof(ag_tnode_t));
    if (n == NULL) {
        return NULL;
    }
    n->id = tb->nnodes;
    tb->nodes[tb->nnodes++] = n;
    return n;
}


static int
ag_has_dstar(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i + 1 < len; i++) {
        if (s[i] == '*' && s[i + 1] == '*') {
            return 1;
        }
    }
    return 0;
}


/* Add a key for r with the segments of s: all of them when full, else
   those before its last '/'; with stop_at_dstar, up to the first that holds
   "**". The key is for the rules of paths that end there (AG_PK_END) when
   all of s was used, else of every path that gets there. */
static int
ag_tkey(ag_tbuild_t *tb, ag_rule_int_t *r, const char *s, size_t len,
    int full, int stop_at_dstar)
{
    const char  *p, *e, *q;
    ag_pkey_t   *k;
    ag_tseg_t   *g;

    k = ag_grow(tb->keys, tb->nkeys, &tb->kcap, sizeof(ag_pkey_t));
    if (k == NULL) {
        return -1;
    }
    tb->keys = k;
    k = &tb->keys[tb->nkeys++];
    k->first = tb->nseg;
    k->nseg = 0;
    k->kind = AG_PK_SUB;
    k->r = r;

    p = s;
    e = s + len;
    for (;;) {
        q = memchr(p, '/', (size_t) (e - p));
        if (q == NULL && !full) {
            break;
        }
        q = q ? q : e;
        if (stop_at_dstar && ag_has_dstar(p, (size_t) (q - p))) {
            break;
        }
        g = ag_grow(tb->seg, tb->nseg, &tb->scap, sizeof(ag_tseg_t));
        if (g == NULL) {
            return -1;
        }
        tb->seg = g;
        g = &tb->seg[tb->nseg++];
        g->s = memchr(p, '*', (size_t) (q - p)) ? NULL : p;
        g->len = (size_t) (q - p);
        k->nseg++;
        if (q == e) {
            k->kind = AG_PK_END;
            break;
        }
        p = q + 1;
    }
    return 0;
}


/* Key a rule's paths for the trie, or say (0) that it goes to "rest". -1
   on ENOMEM. *re is set when it is a regex's. */
static int
ag_tfile(ag_tbuild_t *tb, ag_rule_int_t *r, int *re)
{
    const char  *src, *lit;
    size_t       i, len;

    *re = 0;
    if (r->path_re != NULL) {
        len = ag_regex_prefix(r->path_re, &lit);
        if (len == 0 || memchr(lit, '/', len) == NULL) {
            return 0;
        }
        *re = 1;
        return ag_tkey(tb, r, lit, len, 0, 0) == 0 ? 1 : -1;
    }

    if (r->paths.n == 0) {
        return 0;
    }
    for (i = 0; i < r->paths.n; i++) {
        src = ag_glob_source(r->paths.v[i]);
        if (src[0] == '*' && src[1] == '*') {
            return 0;                   /* for any path */
        }
    }
    for (i = 0; i < r->paths.n; i++) {
        src = ag_glob_source(r->paths.v[i]);
        if (ag_tkey(tb, r, src, strlen(src), 1, 1) != 0) {
            return -1;
        }
    }
    return 1;
}


/* By their segments (a star before any literal): keys that share a node
   come together, and the edges of each node come in order. */
static int
ag_tkey_path_cmp(const void *a, const void *b)
{
    const ag_pkey_t  *x = a, *y = b;
    const ag_tseg_t  *u, *v;
    size_t            i;
    int               c;

    for (i = 0; i < x->nseg && i < y->nseg; i++) {
        u = &x->seg[i];
        v = &y->seg[i];
        if ((u->s == NULL) != (v->s == NULL)) {
            return u->s == NULL ? -1 : 1;
        }
        if (u->s != NULL && (c = ag_bytes_cmp(u->s, u->len, v->s, v->len))) {
            return c;
        }
    }
    return x->nseg < y->nseg ? -1 : (x->nseg > y->nseg);
}


static int
ag_tkey_node_cmp(const void *a, const void *b)
{
    const ag_pkey_t  *x = a, *y = b;

    if (x->node->id != y->node->id) {
        return x->node->id < y->node->id ? -1 : 1;
    }
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    if (x->r->cls != y->r->cls) {
        return x->r->cls < y->r->cls ? -1 : 1;
    }
    return x->r->pub.index < y->r->pub.index ? -1
           : (x->r->pub.index > y->r->pub.index);
}


/* Insert a key, its segments in sorted order after the keys before it: a
   literal segment is the node's last edge or a new one after it. */
static ag_tnode_t *
ag_tinsert(ag_tbuild_t *tb, ag_tnode_t *n, const ag_pkey_t *k)
{
    size_t            i;
    const ag_tseg_t  *g;
    ag_tedge_t       *e;

    for (i = 0; i < k->nseg; i++) {
        g = &k->seg[i];
        if (g->s == NULL) {
            if (n->star == NULL && (n->star = ag_tnode_new(tb)) == NULL) {
                return NULL;
            }
            n = n->star;
            continue;
        }
        e = n->nedge ? &n->edge[n->nedge - 1] : NULL;
        if (e == NULL || e->len != g->len || memcmp(e->s, g->s, g->len) != 0) {
            e = ag_grow(n->edge, n->nedge, &n->cap, sizeof(ag_tedge_t));
            if (e == NULL) {
                return NULL;
            }
            n->edge = e;
            e = &n->edge[n->nedge];
            e->s = g->s;
            e->len = g->len;
            if ((e->node = ag_tnode_new(tb)) == NULL) {
                return NULL;
            }
            n->nedge++;
        }
        n = e->node;
    }
    return n;
}


/* The trie from the keys; edges into the pool; rules into node lists. */
static int
ag_tfinish(ag_tbuild_t *tb, ag_tnode_t *root, ag_rule_int_t **tmp)
{
    size_t       i, j, nt;
    ag_tnode_t  *n;
    ag_tedge_t  *e;
    ag_pkey_t   *k;

    for (i = 0; i < tb->nkeys; i++) {
        tb->keys[i].seg = tb->seg + tb->keys[i].first;
    }
    qsort(tb->keys, tb->nkeys, sizeof(ag_pkey_t), ag_tkey_path_cmp);
    for (i = 0; i < tb->nkeys; i++) {
        tb->keys[i].node = ag_tinsert(tb, root, &tb->keys[i]);
        if (tb->keys[i].node == NULL) {
            return -1;
        }
    }

    for (i = 0; i < tb->nnodes; i++) {
        n = tb->nodes[i];
        e = ag_pool_alloc(tb->pool, (n->nedge + 1) * sizeof(ag_tedge_t));
        if (e == NULL) {
            return -1;
        }
        if (n->nedge) {
            memcpy(e, n->edge, n->nedge * sizeof(ag_tedge_t));
        }
        free(n->edge);
        n->edge = e;
        n->cap = 0;
    }

    qsort(tb->keys, tb->nkeys, sizeof(ag_pkey_t), ag_tkey_node_cmp);
    for (i = 0; i < tb->nkeys; i = j) {
        k = &tb->keys[i];
        for (j = i, nt = 0; j < tb->nkeys && tb->keys[j].node == k->node
                            && tb->keys[j].kind == k->kind; j++)
        {
            tmp[nt++] = tb->keys[j].r;
        }
        if (ag_fill_rlist(tb->pool, k->kind == AG_PK_SUB ? &k->node->sub
                                                         : &k->node->end,
                          tmp, nt) != 0)
        {
            return -1;
        }
    }
    return 0;
}


static int
ag_build_pindex(ag_pool_t *pool, ag_mbucket_t *mb)
{
    size_t          n, i, nt, nre;
    int             re, rc, filed;
    ag_rule_int_t **tmp, **res;
    ag_pindex_t    *px;
    ag_tbuild_t     tb;

    memset(&tb, 0, sizeof(tb));
    tb.pool = pool;
    n = mb->all.off[AG_NCLASS];
    rc = -1;

    px = ag_pool_alloc(pool, sizeof(ag_pindex_t));
    tmp = malloc((n + 1) * sizeof(ag_rule_int_t *));
    res = malloc((n + 1) * sizeof(ag_rule_int_t *));
    if (px == NULL || tmp == NULL || res == NULL
        || (px->root = ag_tnode_new(&tb)) == NULL)
    {
        goto done;
    }

    /* rest and re, in the cell's order (by class, then file order) */
    for (i = 0, nt = 0, nre = 0; i < n; i++) {
        filed = ag_tfile(&tb, mb->all.r[i], &re);
        if (filed < 0) {
            goto done;
        }
        if (filed == 0) {
            tmp[nt++] = mb->all.r[i];
        } else if (re) {
            res[nre++] = mb->all.r[i];
        }
    }
    if (ag_fill_rlist(pool, &px->rest, tmp, nt) != 0
        || ag_fill_rlist(pool, &px->re, res, nre) != 0)
    {
        goto done;
    }

    /* a rule with several globs has a key for each */
    free(tmp);
    tmp = malloc((tb.nkeys + 1) * sizeof(ag_rule_int_t *));
    if (tmp == NULL || ag_tfinish(&tb, px->root, tmp) != 0) {
        goto done;
    }

    mb->px = px;
    rc = 0;

done:
    for (i = 0; i < tb.nnodes; i++) {
        if (tb.nodes[i]->cap) {
            free(tb.nodes[i]->edge);
        }
    }
    free(tb.nodes);
    free(tb.seg);
    free(tb.keys);
    free(tmp);
    free(res);
    return rc;
}


static int
ag_fill_mbucket(ag_pool_t *pool, ag_mbucket_t *mb, const ag_place_t *pl,
    size_t n)
{
    ag_rule_int_t **r;
    size_t          i;
    int             rc;

    mb->method = pl[0].method;
    mb->len = mb->method ? strlen(mb->method) : 0;

    r = malloc((n + 1) * sizeof(ag_rule_int_t *));
    if (r == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        r[i] = pl[i].r;
    }
    rc = ag_fill_rlist(pool, &mb->all, r, n);
    free(r);

    if (rc == 0 && mb->all.off[AG_NCLASS] > AG_PX_MIN) {
        rc = ag_build_pindex(pool, mb);
    }
    return rc;
}


static int
ag_fill_bucket(ag_pool_t *pool, ag_bucket_t *b, const ag_place_t *pl,
    size_t n)
{
    size_t  i, j, nm;

    for (i = 0, nm = 0; i < n; i++) {
        nm += (pl[i].method != NULL
               && (i == 0 || pl[i - 1].method == NULL
                   || strcmp(pl[i - 1].method, pl[i].method) != 0));
    }
    b->m = ag_pool_alloc(pool, (nm + 1) * sizeof(ag_mbucket_t));
    if (b->m == NULL) {
        return -1;
    }

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && ((pl[j].method == NULL && pl[i].method == NULL)
                                  || (pl[j].method != NULL
                                      && pl[i].method != NULL
                                      && strcmp(pl[j].method, pl[i].method)
                                         == 0)); j++)
        {
            /* void */
        }
        if (ag_fill_mbucket(pool, pl[i].method ? &b->m[b->nm++] : &b->any,
                            pl + i, j - i) != 0)
        {
            return -1;
        }
    }
    return 0;
}


static int
ag_build_index(ag_compile_t *c, ag_policy_t *p)
{
    size_t          i, t, m, n, j;
    ag_place_t     *pl;
    ag_rule_int_t  *r;
    ag_bucket_t    *b;
    int             rc;

    for (i = 0, n = 0; i < p->nrules; i++) {
        r = &p->rules[i];
        n += (r->tools.n ? r->tools.n : 1) * (r->methods.n ? r->methods.n : 1);
    }

    pl = malloc((n + 1) * sizeof(ag_place_t));
    if (pl == NULL) {
        return ag_cerror(c, "out of memory");
    }

    for (i = 0, n = 0; i < p->nrules; i++) {
        r = &p->rules[i];
        for (t = 0; t < (r->tools.n ? r->tools.n : 1); t++) {
            for (m = 0; m < (r->methods.n ? r->methods.n : 1); m++) {
                pl[n].tool = r->tools.n ? (long) r->tool_idx[t] : -1;
                pl[n].method = r->methods.n ? r->methods.v[m] : NULL;
                pl[n++].r = r;
            }
        }
    }
    qsort(pl, n, sizeof(ag_place_t), ag_place_cmp);

    rc = 0;
    for (i = 0; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && pl[j].tool == pl[i].tool; j++) {
            /* void */
        }
        b = pl[i].tool < 0 ? &p->wild : &p->tools[pl[i].tool].bucket;
        rc = ag_fill_bucket(c->pool, b, pl + i, j - i);
    }

    free(pl);
    return rc == 0 ? 0 : ag_cerror(c, "out of memory");
}


static void
ag_mark_reads_body(ag_policy_t *p)
{
    size_t          i, t;
    int             any;
    ag_rule_int_t  *r;

    any = 0;
    for (i = 0; i < p->nrules; i++) {
        r = &p->rules[i];
        if (r->when == NULL || !ag_when_reads_body(r->when)) {
            continue;
        }
        if (r->tools.n == 0) {
            any = 1;
        }
        for (t = 0; t < r->tools.n; t++) {
            p->tools[r->tool_idx[t]].pub.reads_body = 1;
        }
    }
    for (t = 0; any && t < p->ntools; t++) {
        p->tools[t].pub.reads_body = 1;
    }
}


static int
ag_host_cmp(const void *a, const void *b)
{
    return strcmp(((const ag_host_t *) a)->host, ((const ag_host_t *) b)->host);
}


/* Exact hosts and "*." suffixes in two sorted arrays; a host listed by two
   tools would make forward-proxy routing ambiguous. */
static int
ag_build_hosts(ag_compile_t *c, ag_policy_t *p)
{
    size_t       i, j, n;
    ag_host_t   *h, *arr;
    ag_tool_t   *t;

    for (i = 0, n = 0; i < p->ntools; i++) {
        n += p->tools[i].pub.nhosts;
    }
    p->hosts_exact = ag_pool_alloc(c->pool, (n + 1) * sizeof(ag_host_t));
    p->hosts_wild = ag_pool_alloc(c->pool, (n + 1) * sizeof(ag_host_t));
    if (p->hosts_exact == NULL || p->hosts_wild == NULL) {
        return ag_cerror(c, "out of memory");
    }

    for (i = 0; i < p->ntools; i++) {
        t = &p->tools[i].pub;
        for (j = 0; j < t->nhosts; j++) {
            if (t->hosts[j][0] == '*') {
                h = &p->hosts_wild[p->nhosts_wild++];
                h->host = t->hosts[j] + 1;
            } else {
                h = &p->hosts_exact[p->nhosts_exact++];
                h->host = t->hosts[j];
            }
            h->len = strlen(h->host);
            h->tool = &p->tools[i];
        }
    }

    for (i = 0; i < 2; i++) {
        arr = i ? p->hosts_wild : p->hosts_exact;
        n = i ? p->nhosts_wild : p->nhosts_exact;
        qsort(arr, n, sizeof(ag_host_t), ag_host_cmp);
        for (j = 1; j < n; j++) {
            if (strcmp(arr[j - 1].host, arr[j].host) == 0) {
                ag_cpush(c, "tools");
                ag_cpush(c, arr[j].tool->pub.name);
                ag_cpush(c, "hosts");
                return ag_cerror(c, "host \"%s%s\" is also listed by tool "
                                 "\"%s\"", i ? "*" : "", arr[j].host,
                                 arr[j - 1].tool->pub.name);
            }
        }
    }
    return 0;
}


/* --- load ------------------------------------------------------------------------- */

static int
ag_parse_default(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    const char  *s = json_string_value(v);

    if (s == NULL || (strcmp(s, "allow") != 0 && strcmp(s, "deny") != 0)) {
        return ag_cerror(c, "expected one of allow, deny");
    }
    p->deflt = s[0] == 'a' ? AG_ALLOW : AG_DENY;
    return 0;
}


static int
ag_parse_strip_top(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    return ag_parse_strip(c, v, &p->strip_headers, &p->strip_query);
}


static int
ag_parse_roles(ag_compile_t *c, ag_policy_t *p, json_t *v, ag_names_t *out)
{
    if (!json_is_array(v)) {
        return ag_cerror(c, "expected an array of group names");
    }
    return ag_want_defined(c, v, 0, (void *const *) p->groups_by_name,
                           p->ngroups, "group", out);
}


static int
ag_parse_admins(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    return ag_parse_roles(c, p, v, &p->admins);
}


static int
ag_parse_auditors(ag_compile_t *c, ag_policy_t *p, json_t *v)
{
    return ag_parse_roles(c, p, v, &p->auditors);
}


typedef struct {
    const char  *key;
    int        (*parse)(ag_compile_t *c, ag_policy_t *p, json_t *v);
} ag_section_t;

/* In dependency order: names are defined before anything refers to them,
   wherever they stand in the file. */
static const ag_section_t ag_sections[] = {
    { "default", ag_parse_default },
    { "strip", ag_parse_strip_top },
    { "secret_patterns", ag_parse_secret_patterns },
    { "tools", ag_parse_tools },
    { "agents", ag_parse_agents },
    { "groups", ag_parse_groups },
    { "admins", ag_parse_admins },
    { "auditors", ag_parse_auditors },
    { "intents", ag_parse_intents },
    { "rules", ag_parse_rules },
    { NULL, NULL }
};


static int
ag_parse_top(ag_compile_t *c, ag_policy_t *p, json_t *root)
{
    static const char *const keys[] = {
        "agentgov", "agents", "groups", "admins", "auditors", "tools",
        "intents", "rules", "default", "strip", "secret_patterns", NULL
    };
    const ag_section_t  *sec;
    json_t              *v;
    size_t               old;

    if (!json_is_object(root)) {
        return ag_cerror(c, "expected an object");
    }
    if (ag_check_keys(c, root, keys, NULL) != 0) {
        return -1;
    }

    v = json_object_get(root, "agentgov");
    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        (void) ag_cpush(c, "agentgov");
        return ag_cerror(c, "expected 1");
    }

    p->deflt = AG_DENY;
    for (sec = ag_sections; sec->key != NULL; sec++) {
        v = json_object_get(root, sec->key);
        if (v == NULL) {
            continue;
        }
        old = ag_cpush(c, sec->key);
        if (sec->parse(c, p, v) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }

    if (ag_build_index(c, p) != 0 || ag_build_hosts(c, p) != 0) {
        return -1;
    }
    ag_mark_reads_body(p);
    return 0;
}


/* Sections that are absent still get (empty) sorted arrays to search. */
static int
ag_policy_empty_indexes(ag_policy_t *p)
{
    void  **e;

    e = ag_pool_alloc(p->pool, sizeof(void *));
    if (e == NULL) {
        return -1;
    }
    p->tools_by_name = (ag_tool_int_t **) e;
    p->agents_by_name = (ag_agent_int_t **) e;
    p->agents_exact = (ag_agent_int_t **) e;
    p->agents_other = (ag_agent_int_t **) e;
    p->groups_by_name = (ag_group_t **) e;
    p->intents_by_name = (ag_intent_t **) e;
    p->rules_by_id = (ag_rule_int_t **) e;
    return 0;
}


static int
ag_policy_digest(ag_policy_t *p, const char *data, size_t len)
{
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen, i;

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen != 32)
    {
        return -1;
    }
    for (i = 0; i < mdlen; i++) {
        snprintf(p->sha256 + 2 * i, 3, "%02x", md[i]);
    }
    return 0;
}


ag_policy_t *
ag_policy_load(const char *data, size_t len, char *err, size_t errlen)
{
    ag_policy_t   *p;
    ag_compile_t   c;
    char           jerr[256];

    if (errlen > 0) {
        err[0] = '\0';
    }

    p = calloc(1, sizeof(ag_policy_t));
    if (p == NULL || (p->pool = ag_pool_create()) == NULL
        || ag_policy_empty_indexes(p) != 0 || ag_policy_digest(p, data, len))
    {
        snprintf(err, errlen, "out of memory");
        ag_policy_free(p);
        return NULL;
    }

    p->root = ag_json_parse(data, len, jerr, sizeof(jerr));
    if (p->root == NULL) {
        snprintf(err, errlen, "%s", jerr);
        ag_policy_free(p);
        return NULL;
    }

    memset(&c, 0, sizeof(c));
    c.pool = p->pool;
    c.err = err;
    c.errlen = errlen;

    if (ag_parse_top(&c, p, p->root) != 0) {
        ag_policy_free(p);
        return NULL;
    }
    return p;
}


ag_policy_t *
ag_policy_load_file(const char *path, char *err, size_t errlen)
{
    FILE         *f;
    char         *buf, *nb;
    size_t        len, size, n;
    ag_policy_t  *p;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
        return NULL;
    }

    buf = NULL;
    len = 0;
    size = 0;
    for ( ;; ) {
        if (len == size) {
            size = size ? size * 2 : 65536;
            nb = size <= AG_POLICY_MAX_FILE + 1 ? realloc(buf, size) : NULL;
            if (nb == NULL) {
                if (size > AG_POLICY_MAX_FILE + 1) {
                    snprintf(err, errlen, "\"%s\" is larger than 16 MiB",
                             path);
                } else {
                    snprintf(err, errlen, "out of memory");
                }
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        n = fread(buf + len, 1, size - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }

    if (ferror(f)) {
        snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);

    p = ag_policy_load(buf, len, err, errlen);
    free(buf);
    return p;
}


void
ag_policy_free(ag_policy_t *p)
{
    if (p == NULL) {
        return;
    }
    ag_pool_destroy(p->pool);
    json_decref(p->root);
    free(p);
}


const char *
ag_policy_sha256(const ag_policy_t *p)
{
    return p->sha256;
}


ag_effect_t
ag_policy_default(const ag_policy_t *p)
{
    return p->deflt;
}


/* --- evaluation ------------------------------------------------------------------ */

#define AG_MAX_SRC    32
#define AG_MAX_LISTS  (AG_MAX_SRC * AG_NCLASS)

/* Where a call's candidate rules come from: for each of up to four cells,
   (tool, method), (tool, any method), (any tool, method) and (any, any),
   the whole cell, or the lists that the cell's path index selects. */
typedef struct {
    const ag_rlist_t      *l[AG_MAX_SRC];
    int                    n;
} ag_sources_t;

/* A merge, in file order, of the sorted rule lists of the sources, each
   rule once. */
typedef struct {
    ag_rule_int_t *const  *v[AG_MAX_LISTS];
    size_t                 n[AG_MAX_LISTS];
    int                    k;
    const ag_rule_int_t   *last;
} ag_cursor_t;

/* What matched: the first rule of each class, every enforced hold. */
typedef struct {
    const ag_rule_int_t   *first[AG_NCLASS];
    const ag_rule_int_t   *holds[AG_MAX_HOLD_RULES + 1];
    size_t                 nholds;
} ag_acc_t;


static const ag_mbucket_t *
ag_method_bucket(const ag_bucket_t *b, const ag_str_t *method)
{
    size_t  i;

    for (i = 0; i < b->nm; i++) {
        if (b->m[i].len == method->len
            && memcmp(b->m[i].method, method->p, method->len) == 0)
        {
            return &b->m[i];
        }
    }
    return NULL;
}


static int
ag_cells(const ag_policy_t *p, const ag_call_t *call,
    const ag_mbucket_t **cells)
{
    const ag_tool_int_t  *t;
    const ag_bucket_t    *b[2];
    const ag_mbucket_t   *m;
    int                   i, k;

    t = call->tool.len ? ag_find((void *const *) p->tools_by_name, p->ntools,
                                 call->tool.p, call->tool.len)
                       : NULL;
    b[0] = t ? &t->bucket : NULL;
    b[1] = &p->wild;

    for (i = 0, k = 0; i < 2; i++) {
        if (b[i] == NULL) {
            continue;
        }
        m = call->method.len ? ag_method_bucket(b[i], &call->method) : NULL;
        if (m != NULL) {
            cells[k++] = m;
        }
        if (b[i]->any.all.off[AG_NCLASS] > 0) {
            cells[k++] = &b[i]->any;
        }
    }
    return k;
}


static int
ag_ascii(const ag_str_t *s)
{
    size_t  i;

    for (i = 0; i < s->len; i++) {
        if ((unsigned char) s->p[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}


static int
ag_src_add(ag_sources_t *src, const ag_rlist_t *l, int max)
{
    if (l->off[AG_NCLASS] == 0) {
        return 0;
    }
    if (src->n >= max) {
        return -1;
    }
    src->l[src->n++] = l;
    return 0;
}


static const ag_tnode_t *
ag_tnode_edge(const ag_tnode_t *n, const char *seg, size_t len)
{
    size_t             lo, hi, mid;
    int                c;
    const ag_tedge_t  *e;

    lo = 0;
    hi = n->nedge;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        e = &n->edge[mid];
        c = ag_bytes_cmp(e->s, e->len, seg, len);
        if (c == 0) {
            return e->node;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}


/* The lists of a path index for a path (see "the path index" above), added
   to src as long as it holds no more than max; -1 when they do not fit. */
static int
ag_px_select(const ag_pindex_t *px, const ag_str_t *path, int *ascii,
    ag_sources_t *src, int max)
{
    const ag_tnode_t  *a[AG_PX_ACTIVE], *b[AG_PX_ACTIVE], *c;
    const char        *p, *e, *q;
    int                na, nb, i;

    if (ag_src_add(src, &px->rest, max) != 0) {
        return -1;
    }
    if (px->re.off[AG_NCLASS] > 0) {
        if (*ascii < 0) {
            *ascii = ag_ascii(path);
        }
        if (!*ascii && ag_src_add(src, &px->re, max) != 0) {
            return -1;
        }
    }
    if (path->len == 0) {
        return 0;                       /* no path: no path test passes */
    }

    a[0] = px->root;
    na = 1;
    p = path->p;
    e = p + path->len;
    for (;;) {
        for (i = 0; i < na; i++) {
            if (ag_src_add(src, &a[i]->sub, max) != 0) {
                return -1;
            }
        }

        /* the next segment: every node reached moves along its edge for
           it and its star edge */
        q = memchr(p, '/', (size_t) (e - p));
        q = q ? q : e;
        for (i = 0, nb = 0; i < na; i++) {
            c = ag_tnode_edge(a[i], p, (size_t) (q - p));
            if (c != NULL) {
                if (nb == AG_PX_ACTIVE) {
                    return -1;
                }
                b[nb++] = c;
            }
            if (a[i]->star != NULL) {
                if (nb == AG_PX_ACTIVE) {
                    return -1;
                }
                b[nb++] = a[i]->star;
            }
        }
        memcpy(a, b, (size_t) nb * sizeof(ag_tnode_t *));
        na = nb;
        if (na == 0) {
            return 0;
        }
        if (q == e) {
            break;
        }
        p = q + 1;
    }

    for (i = 0; i < na; i++) {
        if (ag_src_add(src, &a[i]->sub, max) != 0
            || ag_src_add(src, &a[i]->end, max) != 0)
        {
            return -1;
        }
    }
    return 0;
}


static void
ag_sources(const ag_mbucket_t *const *cells, int nc, const ag_str_t *path,
    int use_index, ag_sources_t *src)
{
    int  i, before, ascii;

    src->n = 0;
    ascii = -1;
    for (i = 0; i < nc; i++) {
        before = src->n;
        /* leave room for the cells after this one, whole */
        if (use_index && cells[i]->px != NULL
            && ag_px_select(cells[i]->px, path, &ascii, src,
                            AG_MAX_SRC - (nc - 1 - i)) == 0)
        {
            continue;
        }
        /* a small cell, or a path that many nodes start: the whole cell */
        src->n = before;
        src->l[src->n++] = &cells[i]->all;
    }
}


static void
ag_cursor_init(ag_cursor_t *cur, const ag_sources_t *src, int from, int to)
{
    int                i, cls;
    size_t             n;
    const ag_rlist_t  *l;

    cur->k = 0;
    cur->last = NULL;
    for (i = 0; i < src->n; i++) {
        l = src->l[i];
        for (cls = from; cls < to; cls++) {
            n = l->off[cls + 1] - l->off[cls];
            if (n > 0) {
                cur->v[cur->k] = l->r + l->off[cls];
                cur->n[cur->k++] = n;
            }
        }
    }
}


static const ag_rule_int_t *
ag_cursor_next(ag_cursor_t *cur)
{
    int                   i, best;
    const ag_rule_int_t  *r;

    do {
        best = -1;
        for (i = 0; i < cur->k; i++) {
            if (cur->n[i] > 0 && (best < 0 || cur->v[i][0]->pub.index
                                              < cur->v[best][0]->pub.index))
            {
                best = i;
            }
        }
        if (best < 0) {
            return NULL;
        }
        r = cur->v[best][0];
        cur->v[best]++;
        cur->n[best]--;
        /* a rule in two lists comes out twice in a row */
    } while (r == cur->last);

    cur->last = r;
    return r;
}


/* Trace text for a match field the call does not satisfy. */
static ag_tri_t
ag_miss(ag_scratch_t *sc, const char *field, const ag_str_t *got,
    const char *const *want, size_t n)
{
    size_t  i, len;

    if (sc->why == NULL) {
        return AG_FALSE;
    }
    if (got->len == 0) {
        len = (size_t) snprintf(sc->why, sc->whylen, "no %s in the call "
                                "(rule wants [", field);
    } else {
        len = (size_t) snprintf(sc->why, sc->whylen, "%s %.*s not in [", field,
                                (int) got->len, got->p);
    }
    for (i = 0; i < n && len < sc->whylen; i++) {
        len += (size_t) snprintf(sc->why + len, sc->whylen - len, "%s%s",
                                 i ? ", " : "", want[i]);
    }
    if (len < sc->whylen) {
        snprintf(sc->why + len, sc->whylen - len, got->len ? "]" : "])");
    }
    return AG_FALSE;
}


#define ag_want_names(f, name, got)                                          \
    if ((f).n && !ag_names_has(&(f), (got).p, (got).len)) {                    \
        return ag_miss(sc, name, &(got), (f).v, (f).n);                        \
    }

#define ag_want_globs_m(f, name, got)                                        \
    if ((f).n && ((got).len == 0 || !ag_globs_match(&(f), (got).p, (got).len))) \
    {                                                                          \
        return ag_miss(sc, name, &(got), (f).src, (f).n);                      \
    }


/* A rule's match keys without its "when". Tool and method are the
   index's: a rule is only looked at for calls whose tool and method it
   names. */
static ag_tri_t
ag_rule_match_keys(const ag_rule_int_t *r, const ag_call_t *call,
    ag_scratch_t *sc)
{
    ag_tri_t    t;
    const char *src;

    ag_want_names(r->agents, "agent", call->agent);
    ag_want_names(r->owners, "owner", call->owner);
    ag_want_names(r->intents, "intent", call->intent);
    ag_want_globs_m(r->hosts, "host", call->host);
    ag_want_globs_m(r->paths, "path", call->path);
    ag_want_globs_m(r->mcp_method, "mcp method", call->mcp_method);
    ag_want_globs_m(r->mcp_tool, "mcp tool", call->mcp_tool);
    ag_want_globs_m(r->mcp_resource, "mcp resource", call->mcp_resource);
    ag_want_globs_m(r->mcp_prompt, "mcp prompt", call->mcp_prompt);

    t = AG_TRUE;
    if (r->path_re != NULL) {
        src = ag_regex_source(r->path_re);
        if (call->path.len == 0) {
            return ag_miss(sc, "path", &call->path, &src, 1);
        }
        t = ag_regex_match(r->path_re, call->path.p, call->path.len, sc);
        if (t == AG_FALSE) {
            return ag_miss(sc, "path", &call->path, &src, 1);
        }
        if (t == AG_DOUBT && sc->why != NULL) {
            snprintf(sc->why, sc->whylen, "path regex: match limit or error "
                     "(%s)", sc->doubt_note);
        }
    }
    return t;
}


static ag_tri_t
ag_rule_match(const ag_rule_int_t *r, const ag_call_t *call, ag_scratch_t *sc)
{
    ag_tri_t  t, w;

    t = ag_rule_match_keys(r, call, sc);
    if (t == AG_FALSE || r->when == NULL) {
        return t;
    }

    w = ag_when_eval(r->when, call, sc);
    return w != AG_TRUE ? w : t;
}


/* fail closed: doubt matches deny and hold rules, never allow rules */
static int
ag_tri_hit(const ag_rule_int_t *r, ag_tri_t t)
{
    return t == AG_TRUE || (t == AG_DOUBT && r->pub.effect != AG_ALLOW);
}


static int
ag_rule_hit(const ag_rule_int_t *r, const ag_call_t *call, ag_scratch_t *sc)
{
    return ag_tri_hit(r, ag_rule_match(r, call, sc));
}


static void
ag_acc_add(ag_acc_t *acc, const ag_rule_int_t *r)
{
    if (r->cls == AG_C_HOLD) {
        if (acc->nholds <= AG_MAX_HOLD_RULES) {
            acc->holds[acc->nholds++] = r;
        }
    } else if (acc->first[r->cls] == NULL) {
        acc->first[r->cls] = r;
    }
}


static ag_effect_t
ag_enforced(const ag_policy_t *p, const ag_acc_t *acc)
{
    if (acc->first[AG_C_DENY] != NULL || acc->nholds > AG_MAX_HOLD_RULES) {
        return AG_DENY;
    }
    if (acc->nholds > 0) {
        return AG_HOLD;
    }
    return acc->first[AG_C_ALLOW] != NULL ? AG_ALLOW : p->deflt;
}


/* First match of one class, or every match (holds). */
static void
ag_eval_class(const ag_sources_t *src, int cls, const ag_call_t *call,
    ag_scratch_t *sc, ag_acc_t *acc)
{
    ag_cursor_t           cur;
    const ag_rule_int_t  *r;

    ag_cursor_init(&cur, src, cls, cls + 1);
    while ((r = ag_cursor_next(&cur)) != NULL) {
        if (!ag_rule_hit(r, call, sc)) {
            continue;
        }
        ag_acc_add(acc, r);
        if (cls != AG_C_HOLD || acc->nholds > AG_MAX_HOLD_RULES) {
            return;
        }
    }
}


static void
ag_eval_fast(const ag_policy_t *p, const ag_sources_t *src,
    const ag_call_t *call, ag_scratch_t *sc, ag_acc_t *acc)
{
    ag_effect_t  e;

    ag_eval_class(src, AG_C_DENY, call, sc, acc);
    if (acc->first[AG_C_DENY] == NULL) {
        ag_eval_class(src, AG_C_HOLD, call, sc, acc);
        if (acc->nholds == 0) {
            ag_eval_class(src, AG_C_ALLOW, call, sc, acc);
        }
    }

    /* monitor rules matter only when they would have been stronger */
    e = ag_enforced(p, acc);
    if (e < AG_DENY) {
        ag_eval_class(src, AG_C_MDENY, call, sc, acc);
    }
    if (e < AG_HOLD && acc->first[AG_C_MDENY] == NULL) {
        ag_eval_class(src, AG_C_MHOLD, call, sc, acc);
    }
}


static const char *
ag_doubt_note(const ag_rule_int_t *r)
{
    switch (r->pub.effect) {
    case AG_DENY:
        return "doubt \xe2\x86\x92 matches deny";
    case AG_HOLD:
        return "doubt \xe2\x86\x92 matches hold";
    default:
        return "doubt \xe2\x86\x92 no match for allow";
    }
}


static void
ag_eval_trace(const ag_sources_t *src, const ag_call_t *call, ag_scratch_t *sc,
    ag_acc_t *acc, ag_trace_pt trace, void *data)
{
    ag_cursor_t           cur;
    const ag_rule_int_t  *r;
    ag_tri_t              t;
    char                  why[512];
    int                   hit;

    ag_cursor_init(&cur, src, 0, AG_NCLASS);
    while ((r = ag_cursor_next(&cur)) != NULL) {
        strcpy(why, "does not match");
        sc->why = why;
        sc->whylen = sizeof(why);
        sc->doubt_note = ag_doubt_note(r);

        t = ag_rule_match(r, call, sc);
        hit = ag_tri_hit(r, t);
        if (hit) {
            ag_acc_add(acc, r);
        }
        trace(data, &r->pub, hit, t == AG_TRUE ? "matches" : why);
    }
    sc->why = NULL;
}


static void
ag_decide(const ag_policy_t *p, const ag_acc_t *acc, ag_decision_t *d)
{
    const ag_rule_int_t  *r;
    size_t                i;

    /* every field but the unused tail of holds[] is written here: a
       memset of the whole struct costs more than the rest of a small
       evaluation */
    d->effect = ag_enforced(p, acc);
    d->rule = NULL;
    d->reason = NULL;
    d->nholds = 0;
    d->monitor_effect = AG_EFFECT_NONE;
    d->monitor_rule = NULL;
    r = NULL;

    if (acc->first[AG_C_DENY] != NULL) {
        r = acc->first[AG_C_DENY];
    } else if (acc->nholds > AG_MAX_HOLD_RULES) {
        d->reason = "too many hold rules match";
    } else if (acc->nholds > 0) {
        r = acc->holds[0];
        for (i = 0; i < acc->nholds; i++) {
            d->holds[i] = &acc->holds[i]->pub;
        }
        d->nholds = acc->nholds;
    } else if (acc->first[AG_C_ALLOW] != NULL) {
        r = acc->first[AG_C_ALLOW];
    } else {
        d->reason = p->deflt == AG_ALLOW ? "allowed by default"
                                         : "no rule allows this call";
    }

    if (r != NULL) {
        d->rule = &r->pub;
        d->reason = r->pub.reason ? r->pub.reason : r->own_reason;
    }

    if (acc->first[AG_C_MDENY] != NULL && d->effect < AG_DENY) {
        d->monitor_effect = AG_DENY;
        d->monitor_rule = &acc->first[AG_C_MDENY]->pub;
    } else if (acc->first[AG_C_MHOLD] != NULL && d->effect < AG_HOLD) {
        d->monitor_effect = AG_HOLD;
        d->monitor_rule = &acc->first[AG_C_MHOLD]->pub;
    }
}


static int
ag_eval(const ag_policy_t *p, const ag_call_t *call, ag_decision_t *d,
    ag_trace_pt trace, void *trace_data, int use_index)
{
    const ag_mbucket_t  *cells[4];
    ag_sources_t         src;
    ag_scratch_t         sc;
    ag_acc_t             acc;
    int                  nc;

    memset(acc.first, 0, sizeof(acc.first));
    acc.nholds = 0;
    ag_scratch_init(&sc);

    nc = ag_cells(p, call, cells);
    ag_sources(cells, nc, &call->path, use_index, &src);
    if (trace != NULL) {
        ag_eval_trace(&src, call, &sc, &acc, trace, trace_data);
    } else {
        ag_eval_fast(p, &src, call, &sc, &acc);
    }
    ag_scratch_free(&sc);

    ag_decide(p, &acc, d);

    if (sc.failed) {
        memset(d, 0, sizeof(ag_decision_t));
        d->effect = AG_DENY;
        d->reason = "policy evaluation failed: out of memory";
        return -1;
    }
    return 0;
}


int
ag_policy_eval(const ag_policy_t *p, const ag_call_t *call, ag_decision_t *d,
    ag_trace_pt trace, void *trace_data)
{
    return ag_eval(p, call, d, trace, trace_data, 1);
}


int
ag_policy_eval_unindexed(const ag_policy_t *p, const ag_call_t *call,
    ag_decision_t *d, ag_trace_pt trace, void *trace_data)
{
    return ag_eval(p, call, d, trace, trace_data, 0);
}


int
ag_policy_may_call(const ag_policy_t *p, const ag_call_t *call)
{
    const ag_mbucket_t   *cells[4];
    const ag_rule_int_t  *r;
    ag_sources_t          src;
    ag_scratch_t          sc;
    ag_cursor_t           cur;
    int                   nc, may;

    ag_scratch_init(&sc);

    nc = ag_cells(p, call, cells);
    ag_sources(cells, nc, &call->path, 1, &src);

    /* only a deny that no condition can lift hides the call for sure */
    may = -1;
    ag_cursor_init(&cur, &src, AG_C_DENY, AG_C_DENY + 1);
    while ((r = ag_cursor_next(&cur)) != NULL) {
        if (r->when == NULL
            && ag_tri_hit(r, ag_rule_match_keys(r, call, &sc)))
        {
            may = 0;
            break;
        }
    }

    /* a hold or allow whose keys match might pass, given the arguments */
    if (may < 0) {
        may = p->deflt == AG_ALLOW;
        ag_cursor_init(&cur, &src, AG_C_HOLD, AG_C_ALLOW + 1);
        while (!may && (r = ag_cursor_next(&cur)) != NULL) {
            may = ag_tri_hit(r, ag_rule_match_keys(r, call, &sc));
        }
    }

    ag_scratch_free(&sc);

    return sc.failed ? 0 : may;
}


/* --- lookups ------------------------------------------------------------------------ */

const ag_tool_t *
ag_policy_tool(const ag_policy_t *p, const char *name, size_t len)
{
    ag_tool_int_t  *t;

    t = ag_find((void *const *) p->tools_by_name, p->ntools, name, len);
    return t ? &t->pub : NULL;
}


const ag_intent_t *
ag_policy_intent(const ag_policy_t *p, const char *name, size_t len)
{
    return ag_find((void *const *) p->intents_by_name, p->nintents, name, len);
}


const ag_agent_t *
ag_policy_agent_by_name(const ag_policy_t *p, const char *name, size_t len)
{
    ag_agent_int_t  *a;

    a = ag_find((void *const *) p->agents_by_name, p->nagents, name, len);
    return a ? &a->pub : NULL;
}


const ag_rule_t *
ag_policy_rule(const ag_policy_t *p, const char *id, size_t len)
{
    ag_rule_int_t  *r;

    r = ag_find((void *const *) p->rules_by_id, p->nrules, id, len);
    return r ? &r->pub : NULL;
}


static const ag_host_t *
ag_host_find(const ag_host_t *a, size_t n, const char *s, size_t len)
{
    size_t  lo, hi, mid;
    int     c;

    lo = 0;
    hi = n;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = ag_cmp_name(a[mid].host, s, len);
        if (c == 0) {
            return &a[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}


const ag_tool_t *
ag_policy_tool_by_host(const ag_policy_t *p, const char *host, size_t len)
{
    char              buf[256];
    size_t            i;
    const ag_host_t  *h;

    if (len == 0 || len >= sizeof(buf)) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        buf[i] = (host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i];
    }

    h = ag_host_find(p->hosts_exact, p->nhosts_exact, buf, len);
    if (h != NULL) {
        return &h->tool->pub;
    }

    /* "*.example.org" is kept as ".example.org"; the leftmost dot gives the
       longest, most specific suffix */
    for (i = 1; i < len; i++) {
        if (buf[i] == '.') {
            h = ag_host_find(p->hosts_wild, p->nhosts_wild, buf + i, len - i);
            if (h != NULL) {
                return &h->tool->pub;
            }
        }
    }
    return NULL;
}


size_t
ag_policy_ntools(const ag_policy_t *p)
{
    return p->ntools;
}


const ag_tool_t *
ag_policy_tool_at(const ag_policy_t *p, size_t i)
{
    return i < p->ntools ? &p->tools[i].pub : NULL;
}


size_t
ag_policy_strip_headers(const ag_policy_t *p, const char *const **names)
{
    *names = (const char *const *) p->strip_headers.v;
    return p->strip_headers.n;
}


size_t
ag_policy_strip_query(const ag_policy_t *p, const char *const **names)
{
    *names = (const char *const *) p->strip_query.v;
    return p->strip_query.n;
}


size_t
ag_policy_secret_patterns(const ag_policy_t *p, const char *const **names,
    const char *const **regexes)
{
    *names = (const char *const *) p->secret_names.v;
    *regexes = (const char *const *) p->secret_regexes.v;
    return p->secret_names.n;
}


/* --- identities ------------------------------------------------------------------------ */

static int
ag_claim_has(json_t *have, json_t *want)
{
    size_t   i;
    json_t  *e;

    if (json_is_string(have)) {
        return json_equal(have, want);
    }
    if (json_is_array(have)) {
        json_array_foreach(have, i, e) {
            if (json_is_string(e) && json_equal(e, want)) {
                return 1;
            }
        }
    }
    return 0;
}


static int
ag_matcher_match(const ag_matcher_t *m, const ag_identity_t *id)
{
    const char  *key;
    json_t      *want;

    if (m->spiffe != NULL) {
        if (id->spiffe.len == 0) {
            return 0;
        }
        return m->glob ? ag_glob_match(m->glob, id->spiffe.p, id->spiffe.len)
                       : ag_cmp_name(m->spiffe, id->spiffe.p, id->spiffe.len)
                         == 0;
    }

    if (!json_is_object(id->claims)) {
        return 0;
    }
    json_object_foreach(m->claims, key, want) {
        if (!ag_claim_has(json_object_get(id->claims, key), want)) {
            return 0;
        }
    }
    return 1;
}


static const ag_agent_int_t *
ag_agent_exact(const ag_policy_t *p, const ag_str_t *spiffe)
{
    size_t  lo, hi, mid;
    int     c;

    lo = 0;
    hi = spiffe->len ? p->nagents_exact : 0;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = ag_cmp_name(p->agents_exact[mid]->m.spiffe, spiffe->p, spiffe->len);
        if (c == 0) {
            return p->agents_exact[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}


/* The one agent whose entry the identity matches. An identity that matches
   two entries (say an exact SPIFFE ID and a glob, or two claim sets) is
   ambiguous: NULL, so that it is refused rather than guessed. */
static const ag_agent_int_t *
ag_agent_match(const ag_policy_t *p, const ag_identity_t *id, int *any)
{
    const ag_agent_int_t  *found;
    size_t                 i;

    found = ag_agent_exact(p, &id->spiffe);
    *any = found != NULL;

    for (i = 0; i < p->nagents_other; i++) {
        if (ag_matcher_match(&p->agents_other[i]->m, id)) {
            *any = 1;
            if (found != NULL) {
                return NULL;
            }
            found = p->agents_other[i];
        }
    }
    return found;
}


const ag_agent_t *
ag_policy_agent(const ag_policy_t *p, const ag_identity_t *id)
{
    const ag_agent_int_t  *a;
    int                    any;

    a = ag_agent_match(p, id, &any);
    return a ? &a->pub : NULL;
}


int
ag_policy_in_group(const ag_policy_t *p, const ag_identity_t *id,
    const char *group)
{
    const ag_group_t  *g;
    size_t             i;
    int                any;

    g = ag_find((void *const *) p->groups_by_name, p->ngroups, group,
                strlen(group));
    if (g == NULL) {
        return 0;
    }

    /* an agent is never a person, whatever groups its identity fits */
    (void) ag_agent_match(p, id, &any);
    if (any) {
        return 0;
    }

    for (i = 0; i < g->n; i++) {
        if (ag_matcher_match(&g->m[i], id)) {
            return 1;
        }
    }
    return 0;
}


static int
ag_in_any(const ag_policy_t *p, const ag_identity_t *id, const ag_names_t *l)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        if (ag_policy_in_group(p, id, l->v[i])) {
            return 1;
        }
    }
    return 0;
}


int
ag_policy_is_admin(const ag_policy_t *p, const ag_identity_t *id)
{
    return ag_in_any(p, id, &p->admins);
}


int
ag_policy_is_auditor(const ag_policy_t *p, const ag_identity_t *id)
{
    return ag_in_any(p, id, &p->auditors);
}


/* --- lint ---------------------------------------------------------------------------- */

static const char *const ag_std_methods[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
    "CONNECT", NULL
};


/* Every value sub allows, sup allows too (an absent sup allows all). */
static int
ag_names_subset(const ag_names_t *sub, const ag_names_t *sup)
{
    size_t  i;

    if (sup->n == 0) {
        return 1;
    }
    if (sub->n == 0) {
        return 0;
    }
    for (i = 0; i < sub->n; i++) {
        if (!ag_names_has(sup, sub->v[i], strlen(sub->v[i]))) {
            return 0;
        }
    }
    return 1;
}


static int
ag_globs_subset(const ag_globs_t *sub, const ag_globs_t *sup)
{
    size_t  i, j;
    int     ok;

    if (sup->n == 0) {
        return 1;
    }
    if (sub->n == 0) {
        return 0;
    }
    for (i = 0; i < sub->n; i++) {
        ok = 0;
        for (j = 0; !ok && j < sup->n; j++) {
            ok = strcmp(sub->src[i], sup->src[j]) == 0
                 || (ag_glob_is_literal(sub->v[i])
                     && ag_glob_match(sup->v[j], sub->src[i],
                                      strlen(sub->src[i])));
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}


/* Whether every call r matches, d matches too (d has no "when"). */
static int
ag_rule_covers(const ag_rule_int_t *d, const ag_rule_int_t *r)
{
    if (d->path_re != NULL
        && (r->path_re == NULL || strcmp(ag_regex_source(d->path_re),
                                         ag_regex_source(r->path_re)) != 0))
    {
        return 0;
    }
    return ag_names_subset(&r->agents, &d->agents)
           && ag_names_subset(&r->owners, &d->owners)
           && ag_names_subset(&r->intents, &d->intents)
           && ag_names_subset(&r->tools, &d->tools)
           && ag_names_subset(&r->methods, &d->methods)
           && ag_globs_subset(&r->hosts, &d->hosts)
           && ag_globs_subset(&r->paths, &d->paths)
           && ag_globs_subset(&r->mcp_method, &d->mcp_method)
           && ag_globs_subset(&r->mcp_tool, &d->mcp_tool)
           && ag_globs_subset(&r->mcp_resource, &d->mcp_resource)
           && ag_globs_subset(&r->mcp_prompt, &d->mcp_prompt);
}


typedef struct {
    ag_warn_pt   warn;
    void        *data;
    int          n;
    char         msg[512];
} ag_lint_t;


static void
ag_lint_say(ag_lint_t *l, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void
ag_lint_say(ag_lint_t *l, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(l->msg, sizeof(l->msg), fmt, ap);
    va_end(ap);
    l->warn(l->data, l->msg);
    l->n++;
}


static void
ag_lint_shadowed(const ag_policy_t *p, ag_lint_t *l)
{
    size_t                i, j;
    const ag_rule_int_t  *r, *d;

    for (i = 0; i < p->nrules; i++) {
        r = &p->rules[i];
        if (r->pub.mode != AG_MODE_ENFORCE || r->pub.effect == AG_DENY) {
            continue;
        }
        for (j = 0; j < p->nrules; j++) {
            d = &p->rules[j];
            if (d->pub.mode == AG_MODE_ENFORCE && d->when == NULL
                && d->pub.effect > r->pub.effect && ag_rule_covers(d, r))
            {
                ag_lint_say(l, "rule %s: never decides, shadowed by %s rule "
                            "%s", r->pub.id, ag_effect_name(d->pub.effect),
                            d->pub.id);
                break;
            }
        }
    }
}


typedef struct {
    char    *key;
    size_t   index;
} ag_lint_key_t;


static int
ag_lint_key_cmp(const void *a, const void *b)
{
    const ag_lint_key_t  *x = a, *y = b;
    int                   c = strcmp(x->key, y->key);

    return c != 0 ? c : (x->index < y->index ? -1 : 1);
}


/* Rules equal but for id, reason and tags. */
static void
ag_lint_duplicates(const ag_policy_t *p, ag_lint_t *l)
{
    size_t          i, n;
    ag_lint_key_t  *k;
    json_t         *copy;

    k = calloc(p->nrules + 1, sizeof(ag_lint_key_t));
    if (k == NULL) {
        return;
    }
    for (i = 0, n = 0; i < p->nrules; i++) {
        copy = json_copy(p->rules[i].json);
        if (copy == NULL) {
            continue;
        }
        json_object_del(copy, "id");
        json_object_del(copy, "reason");
        json_object_del(copy, "tags");
        k[n].key = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT);
        k[n].index = i;
        n += k[n].key != NULL;
        json_decref(copy);
    }

    qsort(k, n, sizeof(ag_lint_key_t), ag_lint_key_cmp);
    for (i = 1; i < n; i++) {
        if (strcmp(k[i - 1].key, k[i].key) == 0) {
            ag_lint_say(l, "rule %s: duplicates rule %s",
                        p->rules[k[i].index].pub.id,
                        p->rules[k[i - 1].index].pub.id);
        }
    }
    for (i = 0; i < n; i++) {
        free(k[i].key);
    }
    free(k);
}


static int
ag_names_meet(const ag_names_t *a, const char *const *b, size_t nb)
{
    size_t  i;

    if (a->n == 0) {
        return 1;
    }
    for (i = 0; i < nb; i++) {
        if (ag_names_has(a, b[i], strlen(b[i]))) {
            return 1;
        }
    }
    return 0;
}


static void
ag_lint_intents(const ag_policy_t *p, ag_lint_t *l)
{
    size_t                i, j, k;
    const ag_intent_t    *in;
    const ag_rule_int_t  *r;
    int                   reached;

    if (p->deflt == AG_ALLOW) {
        return;
    }
    for (i = 0; i < p->nintents; i++) {
        in = &p->intents[i];
        for (j = 0; j < in->ntools; j++) {
            reached = 0;
            for (k = 0; !reached && k < p->nrules; k++) {
                r = &p->rules[k];
                reached = r->cls == AG_C_ALLOW
                          && ag_names_meet(&r->tools, &in->tools[j], 1)
                          && ag_names_meet(&r->intents, &in->name, 1)
                          && ag_names_meet(&r->agents, in->agents,
                                           in->nagents);
            }
            if (!reached) {
                ag_lint_say(l, "intent %s: no allow rule reaches tool %s",
                            in->name, in->tools[j]);
            }
        }
    }
}


static void
ag_lint_rule(const ag_policy_t *p, const ag_rule_int_t *r, ag_lint_t *l)
{
    size_t  i, j;
    int     mcp;

    for (i = 0; i < r->methods.n; i++) {
        for (j = 0; ag_std_methods[j] != NULL
                    && strcmp(ag_std_methods[j], r->methods.v[i]) != 0; j++)
        {
            /* void */
        }
        if (ag_std_methods[j] == NULL) {
            ag_lint_say(l, "rule %s: %s is not a standard HTTP method",
                        r->pub.id, r->methods.v[i]);
        }
    }

    if (r->mcp_method.n + r->mcp_tool.n + r->mcp_resource.n + r->mcp_prompt.n
        && r->tools.n > 0)
    {
        for (i = 0, mcp = 0; i < r->tools.n; i++) {
            mcp |= p->tools[r->tool_idx[i]].pub.mcp;
        }
        if (!mcp) {
            ag_lint_say(l, "rule %s: never matches: mcp conditions on tools "
                        "that are not \"protocol\": \"mcp\"", r->pub.id);
        }
    }

    if (r->pub.mode == AG_MODE_MONITOR && r->pub.effect == AG_ALLOW) {
        ag_lint_say(l, "rule %s: a monitor-mode allow rule is never reported "
                    "(only would-be deny and hold are)", r->pub.id);
    }
}


int
ag_policy_lint(const ag_policy_t *p, ag_warn_pt warn, void *data)
{
    ag_lint_t  l;
    size_t     i;

    l.warn = warn;
    l.data = data;
    l.n = 0;

    for (i = 0; i < p->nrules; i++) {
        ag_lint_rule(p, &p->rules[i], &l);
    }
    ag_lint_shadowed(p, &l);
    ag_lint_duplicates(p, &l);
    ag_lint_intents(p, &l);

    return l.n;
}
