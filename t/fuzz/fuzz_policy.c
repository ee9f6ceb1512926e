/*
 * ag_policy_load: the policy file (operator input, but the first thing a
 * gateway reads, and `agentgov policy check` runs it on anything). On
 * success the policy is also linted and used:
 *
 *   - for each rule (up to AG_FUZZ_MAX_CALLS) a call is built from its match
 *     fields and its "when" operands, so that it tends to match; it is
 *     evaluated as it is, without its body, headers and query, and with
 *     another method and path; the decision with the path index, without it
 *     and with a trace must agree (ag_fuzz_eval);
 *   - for each agent an identity built from its matcher must map to that
 *     agent (or to none, when ambiguous) and never be a member of a group,
 *     an admin or an auditor (SPEC section 3).
 *
 * Input: a policy JSON text.
 */

#include "fuzz.h"
#include "ag_call.h"
#include "ag_json.h"
#include "ag_policy.h"


#define AG_FUZZ_MAX_CALLS    16
#define AG_FUZZ_MAX_HEADERS  32
#define AG_FUZZ_MAX_WALK     64


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


static void
ag_fuzz_warn(void *data, const char *msg)
{
    ag_fuzz_assert(msg != NULL);
    (*(int *) data)++;
}


/* The first string of a string or an array of them, or NULL. */
static const char *
ag_fuzz_first(json_t *v)
{
    if (json_is_array(v)) {
        v = json_array_get(v, 0);
    }
    return json_is_string(v) ? json_string_value(v) : NULL;
}


/* A value a glob matches: each '*' as 'x'. */
static json_t *
ag_fuzz_glob_value(const char *glob, int lower)
{
    char    *s;
    size_t   i, n;
    json_t  *v;

    n = strlen(glob);
    s = ag_fuzz_strndup(glob, n);
    for (i = 0; i < n; i++) {
        if (s[i] == '*') {
            s[i] = 'x';
        } else if (lower && s[i] >= 'A' && s[i] <= 'Z') {
            s[i] = (char) (s[i] - 'A' + 'a');
        }
    }
    v = json_stringn(s, n);
    free(s);
    return v;
}


/* A rough value for a regex: its source without the usual metacharacters. */
static json_t *
ag_fuzz_regex_value(const char *re)
{
    char    *s;
    size_t   i, o, n;
    json_t  *v;

    n = strlen(re);
    s = ag_fuzz_strndup(re, n);
    for (i = 0, o = 0; i < n; i++) {
        if (strchr("^$()[]{}|*+?.\\", re[i]) == NULL) {
            s[o++] = re[i];
        }
    }
    v = json_stringn(s, o);
    free(s);
    return v;
}


/* Set doc[pointer] = v (reference stolen), making objects and arrays on the
   way; silently gives up where the document has something else. */
static void
ag_fuzz_ptr_set(json_t *doc, const char *ptr, json_t *v)
{
    char        *tok;
    size_t       i, o, start, end, len, idx;
    json_t      *next;
    const char  *p;

    len = strlen(ptr);
    if (len == 0 || ptr[0] != '/') {
        json_decref(v);
        return;
    }
    tok = malloc(len + 1);
    if (tok == NULL) {
        ag_fuzz_fail("out of memory");
    }

    for (start = 1; ; start = end + 1) {
        p = memchr(ptr + start, '/', len - start);
        end = p ? (size_t) (p - ptr) : len;
        for (i = start, o = 0; i < end; i++) {
            if (ptr[i] == '~' && i + 1 < end) {
                tok[o++] = ptr[++i] == '0' ? '~' : '/';
            } else {
                tok[o++] = ptr[i];
            }
        }
        tok[o] = '\0';

        idx = (o > 0 && o < 3 && strspn(tok, "0123456789") == o)
              ? (size_t) atoi(tok) : (size_t) -1;

        if (end == len) {
            if (json_is_object(doc)) {
                json_object_setn(doc, tok, o, v);
            } else if (json_is_array(doc) && idx != (size_t) -1) {
                while (json_array_size(doc) <= idx) {
                    json_array_append_new(doc, json_null());
                }
                json_array_set(doc, idx, v);
            }
            json_decref(v);
            break;
        }

        /* an index makes an array, anything else an object */
        if (json_is_object(doc)) {
            next = json_object_getn(doc, tok, o);
            if (next == NULL) {
                next = (idx != (size_t) -1) ? json_array() : json_object();
                json_object_setn_new(doc, tok, o, next);
            }
        } else if (json_is_array(doc) && idx != (size_t) -1) {
            while (json_array_size(doc) <= idx) {
                json_array_append_new(doc, json_object());
            }
            next = json_array_get(doc, idx);
        } else {
            next = NULL;
        }
        if (!json_is_object(next) && !json_is_array(next)) {
            json_decref(v);
            break;
        }
        doc = next;
    }

    free(tok);
}


/* A value that makes one subject's operators hold, as far as one can. */
static json_t *
ag_fuzz_operand(json_t *ops)
{
    json_t  *v;

    if ((v = json_object_get(ops, "eq")) != NULL) {
        return json_incref(v);
    }
    if ((v = json_object_get(ops, "in")) != NULL && json_array_size(v) > 0) {
        return json_incref(json_array_get(v, 0));
    }
    if ((v = json_object_get(ops, "glob")) != NULL && json_is_string(v)) {
        return ag_fuzz_glob_value(json_string_value(v), 0);
    }
    if ((v = json_object_get(ops, "regex")) != NULL && json_is_string(v)) {
        return ag_fuzz_regex_value(json_string_value(v));
    }
    if ((v = json_object_get(ops, "gt")) != NULL && json_is_number(v)) {
        return json_real(json_number_value(v) + 1);
    }
    if ((v = json_object_get(ops, "lt")) != NULL && json_is_number(v)) {
        return json_real(json_number_value(v) - 1);
    }
    if ((v = json_object_get(ops, "ge")) != NULL) {
        return json_incref(v);
    }
    if ((v = json_object_get(ops, "le")) != NULL) {
        return json_incref(v);
    }
    if ((v = json_object_get(ops, "ne")) != NULL) {
        return json_string("fuzz-ne");
    }
    v = json_object_get(ops, "exists");
    return json_is_false(v) ? NULL : json_string("x");
}


/* HTTP text of a JSON value: strings as they are, the rest encoded. */
static json_t *
ag_fuzz_text(json_t *v)
{
    char    *s;
    json_t  *t;

    if (json_is_string(v)) {
        return json_incref(v);
    }
    s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    t = s ? json_string(s) : NULL;
    free(s);
    return t;
}


/* "mon" ... "sun" and "HH:MM" into a time within the window. */
static void
ag_fuzz_time(json_t *call, json_t *ops)
{
    static const char  *const days[] = {
        "mon", "tue", "wed", "thu", "fri", "sat", "sun"
    };
    char         buf[32];
    int          d, h, m;
    const char  *day, *hours;

    day = ag_fuzz_first(json_object_get(ops, "days"));
    hours = ag_fuzz_first(json_object_get(ops, "hours"));

    for (d = 0; day != NULL && d < 7 && strcmp(days[d], day) != 0; d++) {
        /* void */
    }
    d = (day == NULL || d == 7) ? 0 : d;
    h = 12;
    m = 0;
    if (hours != NULL && strlen(hours) >= 5) {
        h = atoi(hours) % 24;
        m = atoi(hours + 3) % 60;
    }

    /* 2025-06-09 is a Monday */
    snprintf(buf, sizeof(buf), "2025-06-%02dT%02d:%02d:00Z", 9 + d, h, m);
    json_object_set_new(call, "time", json_string(buf));
}


/* Walk a "when" object, filling call so that its conditions tend to hold. */
static void
ag_fuzz_when(json_t *call, json_t *when, int *budget)
{
    size_t       i;
    json_t      *v, *e, *val;
    const char  *key;

    if (!json_is_object(when) || --*budget < 0) {
        return;
    }

    json_object_foreach(when, key, v) {
        if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0) {
            json_array_foreach(v, i, e) {
                ag_fuzz_when(call, e, budget);
            }
            continue;
        }
        if (strcmp(key, "not") == 0) {
            ag_fuzz_when(call, v, budget);
            continue;
        }
        if (strcmp(key, "time") == 0) {
            ag_fuzz_time(call, v);
            continue;
        }
        if (!json_is_object(v)) {
            continue;
        }

        val = ag_fuzz_operand(v);
        if (val == NULL) {
            continue;
        }

        if (strncmp(key, "header:", 7) == 0) {
            e = ag_fuzz_text(val);
            if (e != NULL) {
                json_object_set_new(json_object_get(call, "headers"), key + 7,
                                    e);
            }
        } else if (strncmp(key, "query:", 6) == 0) {
            e = ag_fuzz_text(val);
            if (e != NULL) {
                json_object_set_new(json_object_get(call, "query"), key + 6,
                                    e);
            }
        } else if (strncmp(key, "body:", 5) == 0) {
            if (key[5] == '\0') {
                json_object_set(call, "body", val);
            } else {
                ag_fuzz_ptr_set(json_object_get(call, "body"), key + 5,
                                json_incref(val));
            }
        } else if (strncmp(key, "args:", 5) == 0) {
            ag_fuzz_ptr_set(json_object_get(json_object_get(call, "mcp"),
                                            "arguments"),
                            key + 5, json_incref(val));
        } else if (strcmp(key, "chain") == 0) {
            e = ag_fuzz_text(val);
            if (e != NULL) {
                json_object_set_new(call, "chain", e);
            }
        } else if (strcmp(key, "depth") == 0 && json_is_number(val)) {
            json_object_set_new(call, "depth",
                                json_integer((json_int_t) json_number_value(val)));
        }

        json_decref(val);
    }
}


static void
ag_fuzz_set_str(json_t *obj, const char *key, const char *s)
{
    if (s != NULL) {
        json_object_set_new(obj, key, json_string(s));
    }
}


/* A CALL.json object for rule r of the policy document root. */
static json_t *
ag_fuzz_rule_call(json_t *root, json_t *r)
{
    int          budget;
    size_t       i;
    json_t      *call, *mcp, *v, *tool;
    const char  *s, *key;

    call = json_pack("{s:{},s:{},s:{},s:{s:{}}}", "headers", "query", "body",
                     "mcp", "arguments");
    if (call == NULL) {
        ag_fuzz_fail("out of memory");
    }

    s = ag_fuzz_first(json_object_get(r, "tool"));
    if (s == NULL) {
        json_object_foreach(json_object_get(root, "tools"), key, v) {
            s = key;
            break;
        }
    }
    ag_fuzz_set_str(call, "tool", s);
    tool = s ? json_object_get(json_object_get(root, "tools"), s) : NULL;

    s = ag_fuzz_first(json_object_get(r, "method"));
    ag_fuzz_set_str(call, "method", s ? s : "GET");

    v = json_object_get(r, "path");
    if (json_is_object(v) && json_is_string(json_object_get(v, "regex"))) {
        json_object_set_new(call, "path", ag_fuzz_regex_value(
            json_string_value(json_object_get(v, "regex"))));
    } else if ((s = ag_fuzz_first(v)) != NULL) {
        json_object_set_new(call, "path", ag_fuzz_glob_value(s, 0));
    } else {
        ag_fuzz_set_str(call, "path", "/");
    }

    s = ag_fuzz_first(json_object_get(r, "host"));
    if (s == NULL) {
        s = ag_fuzz_first(json_object_get(tool, "hosts"));
    }
    if (s != NULL) {
        json_object_set_new(call, "host", ag_fuzz_glob_value(s, 1));
    }

    s = ag_fuzz_first(json_object_get(r, "agent"));
    ag_fuzz_set_str(call, "agent", s);
    if (s != NULL) {
        v = json_object_get(json_object_get(json_object_get(root, "agents"),
                                            s), "owner");
        ag_fuzz_set_str(call, "owner", json_string_value(v));
    }
    s = ag_fuzz_first(json_object_get(r, "owner"));
    ag_fuzz_set_str(call, "owner", s);
    ag_fuzz_set_str(call, "intent", ag_fuzz_first(json_object_get(r, "intent")));
    if (json_object_get(call, "intent") != NULL) {
        ag_fuzz_set_str(call, "task", "fuzz-task");
    }

    v = json_object_get(r, "mcp");
    mcp = json_object_get(call, "mcp");
    if (json_is_object(v)) {
        static const char *const  keys[] = {
            "method", "tool", "resource", "prompt", NULL
        };
        for (i = 0; keys[i] != NULL; i++) {
            s = ag_fuzz_first(json_object_get(v, keys[i]));
            if (s != NULL) {
                json_object_set_new(mcp, keys[i], ag_fuzz_glob_value(s, 0));
            }
        }
        if (json_object_get(mcp, "method") == NULL
            && json_object_get(mcp, "tool") != NULL)
        {
            ag_fuzz_set_str(mcp, "method", "tools/call");
        }
    }

    budget = AG_FUZZ_MAX_WALK;
    ag_fuzz_when(call, json_object_get(r, "when"), &budget);

    return call;
}


/* Evaluate a CALL.json object, if it makes a call. */
static void
ag_fuzz_call_eval(const ag_policy_t *p, json_t *obj)
{
    char         err[256];
    ag_call_t    call;
    ag_header_t  hdrs[AG_FUZZ_MAX_HEADERS];

    if (ag_call_from_json(obj, &call, hdrs, AG_FUZZ_MAX_HEADERS, err,
                          sizeof(err)) != 0)
    {
        return;
    }
    if (json_object_get(obj, "time") == NULL) {
        call.now = AG_FUZZ_NOW;
    }
    ag_fuzz_eval(p, &call);
}


static void
ag_fuzz_rules(const ag_policy_t *p, json_t *root)
{
    size_t   i;
    json_t  *r, *call, *bare;

    json_array_foreach(json_object_get(root, "rules"), i, r) {
        if (i == AG_FUZZ_MAX_CALLS) {
            break;
        }

        call = ag_fuzz_rule_call(root, r);
        ag_fuzz_call_eval(p, call);

        /* again, every subject missing */
        bare = json_deep_copy(call);
        json_object_del(bare, "headers");
        json_object_del(bare, "query");
        json_object_del(bare, "body");
        json_object_del(json_object_get(bare, "mcp"), "arguments");
        ag_fuzz_call_eval(p, bare);
        json_decref(bare);

        /* and another method and path in the same tool */
        json_object_set_new(call, "method", json_string("PATCH"));
        json_object_set_new(call, "path", json_string("/v1/x/../y"));
        ag_fuzz_call_eval(p, call);

        json_decref(call);
    }
}


/* An identity its matcher object m matches. */
static void
ag_fuzz_identity(json_t *m, ag_identity_t *id, json_t **hold)
{
    json_t  *v;

    memset(id, 0, sizeof(ag_identity_t));
    *hold = NULL;

    v = json_object_get(m, "spiffe");
    if (json_is_string(v)) {
        *hold = ag_fuzz_glob_value(json_string_value(v), 0);
        id->spiffe.p = json_string_value(*hold);
        id->spiffe.len = json_string_length(*hold);
        return;
    }
    v = json_object_get(m, "jwt");
    if (json_is_object(v)) {
        *hold = json_incref(v);
        id->claims = v;
    }
}


static void
ag_fuzz_identities(const ag_policy_t *p, json_t *root)
{
    size_t            i;
    json_t           *a, *hold, *groups, *g, *m;
    const char       *name, *gname;
    ag_identity_t     id;
    const ag_agent_t *agent;

    groups = json_object_get(root, "groups");

    json_object_foreach(json_object_get(root, "agents"), name, a) {
        ag_fuzz_identity(a, &id, &hold);
        if (hold == NULL) {
            continue;
        }

        agent = ag_policy_agent(p, &id);
        if (agent != NULL && strcmp(agent->name, name) != 0) {
            ag_fuzz_fail("agent %s's own identity maps to agent %s", name,
                         agent->name);
        }

        /* an identity that matches an agent entry is never a person */
        json_object_foreach(groups, gname, g) {
            if (ag_policy_in_group(p, &id, gname)) {
                ag_fuzz_fail("agent %s's identity is a member of group %s",
                             name, gname);
            }
        }
        ag_fuzz_assert(!ag_policy_is_admin(p, &id));
        ag_fuzz_assert(!ag_policy_is_auditor(p, &id));

        json_decref(hold);
    }

    json_object_foreach(groups, gname, g) {
        json_array_foreach(g, i, m) {
            ag_fuzz_identity(m, &id, &hold);
            if (hold == NULL) {
                continue;
            }
            if (ag_policy_agent(p, &id) != NULL) {
                ag_fuzz_assert(!ag_policy_in_group(p, &id, gname));
            }
            (void) ag_policy_is_admin(p, &id);
            (void) ag_policy_is_auditor(p, &id);
            json_decref(hold);
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  n;
    char                 err[1024];
    size_t               i, k;
    json_t              *root;
    const char          *sha;
    const char *const   *names, *const *regexes;
    ag_policy_t         *p;
    const ag_tool_t     *tool;
    const char          *key;
    json_t              *v, *hv;

    err[0] = '\0';
    p = ag_policy_load((const char *) data, size, err, sizeof(err));
    if (p == NULL) {
        ag_fuzz_assert(err[0] != '\0');
        return 0;
    }

    sha = ag_policy_sha256(p);
    ag_fuzz_assert(sha != NULL && strlen(sha) == 64);
    ag_fuzz_assert(ag_policy_default(p) == AG_ALLOW
                   || ag_policy_default(p) == AG_DENY);

    n = 0;
    ag_fuzz_assert(ag_policy_lint(p, ag_fuzz_warn, &n) == n);

    k = ag_policy_strip_headers(p, &names);
    for (i = 0; i < k; i++) {
        ag_fuzz_assert(names[i] != NULL);
    }
    k = ag_policy_strip_query(p, &names);
    for (i = 0; i < k; i++) {
        ag_fuzz_assert(names[i] != NULL);
    }
    k = ag_policy_secret_patterns(p, &names, &regexes);
    for (i = 0; i < k; i++) {
        ag_fuzz_assert(names[i] != NULL && regexes[i] != NULL);
    }

    /* a policy that loaded is strict JSON */
    root = ag_json_parse((const char *) data, size, err, sizeof(err));
    ag_fuzz_assert(root != NULL);

    json_object_foreach(json_object_get(root, "tools"), key, v) {
        tool = ag_policy_tool(p, key, strlen(key));
        ag_fuzz_assert(tool != NULL && strcmp(tool->name, key) == 0);
        for (i = 0; i < tool->nhosts; i++) {
            hv = ag_fuzz_glob_value(tool->hosts[i], 1);
            ag_fuzz_assert(ag_policy_tool_by_host(p, json_string_value(hv),
                                                  json_string_length(hv))
                           != NULL);
            json_decref(hv);
        }
    }
    json_object_foreach(json_object_get(root, "intents"), key, v) {
        ag_fuzz_assert(ag_policy_intent(p, key, strlen(key)) != NULL);
    }
    json_array_foreach(json_object_get(root, "rules"), i, v) {
        key = json_string_value(json_object_get(v, "id"));
        ag_fuzz_assert(key != NULL
                       && ag_policy_rule(p, key, strlen(key)) != NULL
                       && ag_policy_rule(p, key, strlen(key))->index == i);
    }

    ag_fuzz_rules(p, root);
    ag_fuzz_identities(p, root);

    json_decref(root);
    ag_policy_free(p);
    return 0;
}
