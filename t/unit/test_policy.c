/*
 * The policy engine: validation (exact error paths), conditions in
 * three-valued logic, precedence, monitor mode, the index, identities,
 * hosts, lint, traces; and one timing printout (no timed assertions).
 *
 * Policies and calls are written with ' for " to keep them readable.
 */

#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "unit_policy.h"
#include "ag_json.h"
#include "ag_match.h"
#include "ag_policy.h"


static void
load_fails_(const char *text, const char *want, int line)
{
    char          err[512];
    char         *t = q(text), *w = strdup(want);
    ag_policy_t  *p;

    p = ag_policy_load(t, strlen(t), err, sizeof(err));
    free(t);
    if (p != NULL) {
        ag_policy_free(p);
        free(w);
        fail_msg("line %d: policy accepted, wanted \"%s\"", line, want);
    }
    if (strcmp(err, w) != 0) {
        fail_msg("line %d: error\n  \"%s\", wanted\n  \"%s\"", line, err, w);
    }
    free(w);
}

#define load_fails(text, want)  load_fails_(text, want, __LINE__)


typedef struct {
    json_t       *obj;
    ag_call_t     c;
    ag_header_t   h[32];
} tcall_t;


static void
mkcall(tcall_t *tc, const char *text)
{
    char   err[256];
    char  *t = q(text);

    tc->obj = ag_json_parse(t, strlen(t), err, sizeof(err));
    free(t);
    if (tc->obj == NULL) {
        fail_msg("bad call JSON: %s", err);
    }
    if (ag_call_from_json(tc->obj, &tc->c, tc->h, 32, err, sizeof(err)) != 0) {
        fail_msg("bad call: %s", err);
    }
}


static ag_effect_t
decide(ag_policy_t *p, const char *call, ag_decision_t *d)
{
    tcall_t        tc;
    ag_decision_t  local;

    d = d ? d : &local;
    mkcall(&tc, call);
    assert_int_equal(ag_policy_eval(p, &tc.c, d, NULL, NULL), 0);
    json_decref(tc.obj);
    return d->effect;
}


/*
 * The three-valued result of a "when" in a call, read through the public
 * API: a deny rule matches on TRUE and DOUBT, an allow rule only on TRUE.
 */
static ag_tri_t
cond(const char *when, const char *call)
{
    char          buf[4096];
    ag_policy_t  *p;
    int           deny, allow;

    snprintf(buf, sizeof(buf), "{'agentgov': 1, 'default': 'allow', "
             "'rules': [{'id': 'r', 'effect': 'deny', 'when': %s}]}", when);
    p = load(buf);
    deny = decide(p, call, NULL) == AG_DENY;
    ag_policy_free(p);

    snprintf(buf, sizeof(buf), "{'agentgov': 1, 'default': 'deny', "
             "'rules': [{'id': 'r', 'effect': 'allow', 'when': %s}]}", when);
    p = load(buf);
    allow = decide(p, call, NULL) == AG_ALLOW;
    ag_policy_free(p);

    if (allow && !deny) {
        fail_msg("allow matched where deny did not: %s", when);
    }
    return allow ? AG_TRUE : (deny ? AG_DOUBT : AG_FALSE);
}

#define T  AG_TRUE
#define F  AG_FALSE
#define D  AG_DOUBT


/* --- operators ---------------------------------------------------------------- */

static void
op_eq(void **state)
{
    (void) state;
    assert_int_equal(cond("{'body:/a': {'eq': 'x'}}", "{'body': {'a': 'x'}}"), T);
    assert_int_equal(cond("{'body:/a': {'eq': 'x'}}", "{'body': {'a': 'y'}}"), F);
    assert_int_equal(cond("{'body:/a': {'eq': 'x'}}", "{'body': {'b': 'x'}}"), D);
    assert_int_equal(cond("{'body:/a': {'eq': 'x'}}", "{}"), D);
    /* a JSON string never compares as a number, nor a number as a string */
    assert_int_equal(cond("{'body:/a': {'eq': 5}}", "{'body': {'a': '5'}}"), D);
    assert_int_equal(cond("{'body:/a': {'eq': '5'}}", "{'body': {'a': 5}}"), D);
    assert_int_equal(cond("{'body:/a': {'eq': 5}}", "{'body': {'a': 5.0}}"), T);
    assert_int_equal(cond("{'body:/a': {'eq': 5}}", "{'body': {'a': 6}}"), F);
    assert_int_equal(cond("{'body:/a': {'eq': true}}", "{'body': {'a': true}}"), T);
    assert_int_equal(cond("{'body:/a': {'eq': true}}", "{'body': {'a': false}}"), F);
    assert_int_equal(cond("{'body:/a': {'eq': true}}", "{'body': {'a': 1}}"), D);
    assert_int_equal(cond("{'body:/a': {'eq': null}}", "{'body': {'a': null}}"), T);
    assert_int_equal(cond("{'body:/a': {'eq': null}}", "{'body': {'a': 0}}"), D);
    assert_int_equal(cond("{'body:/a': {'eq': 'x'}}", "{'body': {'a': ['x']}}"), D);
    /* big integers compare exactly */
    assert_int_equal(cond("{'body:/a': {'eq': 9007199254740993}}",
                          "{'body': {'a': 9007199254740992}}"), F);
}


static void
op_eq_http_strings(void **state)
{
    (void) state;
    assert_int_equal(cond("{'header:X-Mode': {'eq': 'fast'}}",
                          "{'headers': {'X-Mode': 'fast'}}"), T);
    /* header and query text that is a plain decimal compares as a number */
    assert_int_equal(cond("{'header:X-N': {'eq': 5}}",
                          "{'headers': {'X-N': '5.0'}}"), T);
    assert_int_equal(cond("{'header:X-N': {'eq': 5}}",
                          "{'headers': {'X-N': '6'}}"), F);
    assert_int_equal(cond("{'header:X-N': {'eq': 5}}",
                          "{'headers': {'X-N': 'five'}}"), D);
    assert_int_equal(cond("{'query:n': {'eq': 5}}", "{'query': 'n=5'}"), T);
    assert_int_equal(cond("{'query:n': {'eq': true}}", "{'query': 'n=true'}"), D);
}


static void
op_ne(void **state)
{
    (void) state;
    assert_int_equal(cond("{'body:/a': {'ne': 'x'}}", "{'body': {'a': 'y'}}"), T);
    assert_int_equal(cond("{'body:/a': {'ne': 'x'}}", "{'body': {'a': 'x'}}"), F);
    assert_int_equal(cond("{'body:/a': {'ne': 'x'}}", "{'body': {}}"), D);
    assert_int_equal(cond("{'body:/a': {'ne': 'x'}}", "{'body': {'a': 1}}"), D);
}


static void
op_in(void **state)
{
    (void) state;
    assert_int_equal(cond("{'body:/a': {'in': ['x', 'y']}}",
                          "{'body': {'a': 'y'}}"), T);
    assert_int_equal(cond("{'body:/a': {'in': ['x', 'y']}}",
                          "{'body': {'a': 'z'}}"), F);
    assert_int_equal(cond("{'body:/a': {'in': ['x', 'y']}}",
                          "{'body': {'a': 3}}"), D);
    assert_int_equal(cond("{'body:/a': {'in': ['x', 'y']}}", "{}"), D);
    /* "or" of eq: a mixed list is true on a match, doubt on a type miss */
    assert_int_equal(cond("{'body:/a': {'in': ['x', 3]}}",
                          "{'body': {'a': 3}}"), T);
    assert_int_equal(cond("{'body:/a': {'in': ['x', 3]}}",
                          "{'body': {'a': 4}}"), D);
}


static void
op_glob(void **state)
{
    (void) state;
    assert_int_equal(cond("{'args:/path': {'glob': '/srv/**'}}",
                          "{'mcp': {'arguments': {'path': '/srv/a/b'}}}"), T);
    assert_int_equal(cond("{'args:/path': {'glob': '/srv/**'}}",
                          "{'mcp': {'arguments': {'path': '/etc/passwd'}}}"), F);
    assert_int_equal(cond("{'args:/path': {'glob': '/srv/**'}}",
                          "{'mcp': {'arguments': {'path': 7}}}"), D);
    assert_int_equal(cond("{'args:/path': {'glob': '/srv/**'}}",
                          "{'body': {'path': '/srv/a'}}"), D);
    assert_int_equal(cond("{'header:X-A': {'glob': 'a*'}}",
                          "{'headers': {'x-a': 'abc'}}"), T);
}


static void
op_regex(void **state)
{
    char  when[128], call[256];

    (void) state;
    assert_int_equal(cond("{'body:/id': {'regex': '[0-9]+'}}",
                          "{'body': {'id': '123'}}"), T);
    assert_int_equal(cond("{'body:/id': {'regex': '[0-9]+'}}",
                          "{'body': {'id': '12a3'}}"), F);
    /* anchored at both ends */
    assert_int_equal(cond("{'body:/id': {'regex': '[0-9]+'}}",
                          "{'body': {'id': 'x1'}}"), F);
    assert_int_equal(cond("{'body:/id': {'regex': '[0-9]+'}}",
                          "{'body': {'id': 123}}"), D);
    /* the match limit gives doubt */
    snprintf(when, sizeof(when), "{'body:/s': {'regex': '(a+)+$'}}");
    snprintf(call, sizeof(call), "{'body': {'s': '%s'}}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    assert_int_equal(cond(when, call), D);
}


static void
op_compare(void **state)
{
    (void) state;
    assert_int_equal(cond("{'body:/n': {'gt': 5000}}", "{'body': {'n': 9000}}"), T);
    assert_int_equal(cond("{'body:/n': {'gt': 5000}}", "{'body': {'n': 5000}}"), F);
    assert_int_equal(cond("{'body:/n': {'ge': 5000}}", "{'body': {'n': 5000}}"), T);
    assert_int_equal(cond("{'body:/n': {'lt': 5000}}", "{'body': {'n': 4999.5}}"), T);
    assert_int_equal(cond("{'body:/n': {'lt': 5000}}", "{'body': {'n': 5000}}"), F);
    assert_int_equal(cond("{'body:/n': {'le': 5000}}", "{'body': {'n': 5000}}"), T);
    assert_int_equal(cond("{'body:/n': {'le': 0.5}}", "{'body': {'n': 1}}"), F);
    assert_int_equal(cond("{'body:/n': {'gt': 5000}}", "{'body': {'n': '9000'}}"), D);
    assert_int_equal(cond("{'body:/n': {'gt': 5000}}", "{'body': {'n': null}}"), D);
    assert_int_equal(cond("{'body:/n': {'gt': 5000}}", "{'body': {'m': 1}}"), D);
    assert_int_equal(cond("{'header:X-N': {'gt': 10}}",
                          "{'headers': {'X-N': '10.5'}}"), T);
    assert_int_equal(cond("{'header:X-N': {'gt': 10}}",
                          "{'headers': {'X-N': '-11'}}"), F);
    assert_int_equal(cond("{'header:X-N': {'gt': 10}}",
                          "{'headers': {'X-N': '1e3'}}"), D);
    assert_int_equal(cond("{'query:n': {'lt': 10}}", "{'query': 'n=9'}"), T);
    assert_int_equal(cond("{'query:n': {'lt': 10}}", "{'query': 'n=+9'}"), D);
    /* several operators on one subject: all must hold */
    assert_int_equal(cond("{'body:/n': {'gt': 1, 'lt': 10}}",
                          "{'body': {'n': 5}}"), T);
    assert_int_equal(cond("{'body:/n': {'gt': 1, 'lt': 10}}",
                          "{'body': {'n': 50}}"), F);
}


static void
op_exists(void **state)
{
    (void) state;
    assert_int_equal(cond("{'body:/a': {'exists': true}}", "{'body': {'a': null}}"), T);
    assert_int_equal(cond("{'body:/a': {'exists': true}}", "{'body': {}}"), F);
    assert_int_equal(cond("{'body:/a': {'exists': false}}", "{'body': {}}"), T);
    assert_int_equal(cond("{'body:/a': {'exists': false}}", "{}"), T);
    assert_int_equal(cond("{'header:X-A': {'exists': true}}",
                          "{'headers': {'X-A': ['1', '2']}}"), T);
    assert_int_equal(cond("{'query:a': {'exists': true}}", "{'query': 'a&b'}"), T);
    assert_int_equal(cond("{'query:a': {'exists': false}}", "{'query': 'b=1'}"), T);
    /* a query whose names do not decode: cannot tell */
    assert_int_equal(cond("{'query:a': {'exists': false}}", "{'query': 'b%zz=1'}"), D);
    /* a '..' value still exists */
    assert_int_equal(cond("{'body:/p': {'exists': true}}",
                          "{'body': {'p': '../x'}}"), T);
}


static void
subjects_chain_depth(void **state)
{
    (void) state;
    assert_int_equal(cond("{'chain': {'glob': 'root>*'}}",
                          "{'chain': 'root>kid', 'depth': 1}"), T);
    assert_int_equal(cond("{'chain': {'eq': ''}}", "{}"), T);
    assert_int_equal(cond("{'depth': {'gt': 1}}", "{'depth': 2}"), T);
    assert_int_equal(cond("{'depth': {'gt': 1}}", "{'depth': 1}"), F);
    assert_int_equal(cond("{'depth': {'eq': 0}}", "{}"), T);
    assert_int_equal(cond("{'depth': {'eq': '0'}}", "{}"), D);
}


static void
headers_case_and_repeats(void **state)
{
    (void) state;
    assert_int_equal(cond("{'header:x-priority': {'eq': 'high'}}",
                          "{'headers': {'X-PRIORITY': 'high'}}"), T);
    assert_int_equal(cond("{'header:X-Priority': {'eq': 'high'}}",
                          "{'headers': {'x-priority': 'low'}}"), F);
    /* values are case-sensitive */
    assert_int_equal(cond("{'header:X-Priority': {'eq': 'high'}}",
                          "{'headers': {'x-priority': 'HIGH'}}"), F);
    /* a header sent twice: the gateway cannot know which one the tool reads */
    assert_int_equal(cond("{'header:X-Priority': {'eq': 'high'}}",
                          "{'headers': {'x-priority': ['high', 'high']}}"), D);
    assert_int_equal(cond("{'header:X-Priority': {'eq': 'high'}}",
                          "{'headers': {'x-priority': 'high', "
                          "'X-Priority': 'low'}}"), D);
}


static void
query_decoding(void **state)
{
    (void) state;
    assert_int_equal(cond("{'query:q': {'eq': 'a b/c'}}", "{'query': 'q=a+b%2Fc'}"), T);
    assert_int_equal(cond("{'query:a b': {'eq': '1'}}", "{'query': 'a%20b=1'}"), T);
    assert_int_equal(cond("{'query:q': {'eq': 'x'}}", "{'query': 'q=x&q=x'}"), D);
    assert_int_equal(cond("{'query:q': {'eq': 'x'}}", "{'query': 'q=%zz'}"), D);
    assert_int_equal(cond("{'query:q': {'eq': 'x'}}", "{'query': 'r=1'}"), D);
    assert_int_equal(cond("{'query:q': {'eq': 'x'}}", "{'query': 'q=y&r=%'}"), F);
    /* an object query in a call is encoded, then read back decoded */
    assert_int_equal(cond("{'query:q': {'eq': 'a&b=c'}}",
                          "{'query': {'q': 'a&b=c'}}"), T);
    assert_int_equal(cond("{'query:t': {'eq': 'x'}}",
                          "{'query': {'t': ['x', 'y']}}"), D);
}


static void
dotdot_doubt(void **state)
{
    (void) state;
    assert_int_equal(cond("{'args:/path': {'glob': '/srv/**'}}",
                          "{'mcp': {'arguments': {'path': '/srv/../etc/x'}}}"), D);
    assert_int_equal(cond("{'args:/path': {'ne': 'x'}}",
                          "{'mcp': {'arguments': {'path': 'a\\\\..\\\\b'}}}"), D);
    assert_int_equal(cond("{'query:f': {'glob': '/srv/**'}}",
                          "{'query': 'f=/srv/%2e%2e/etc'}"), D);
    assert_int_equal(cond("{'header:X-F': {'eq': '..'}}",
                          "{'headers': {'X-F': '..'}}"), D);
    assert_int_equal(cond("{'args:/path': {'glob': '/srv/**'}}",
                          "{'mcp': {'arguments': {'path': '/srv/a..b/x'}}}"), T);
}


static void
json_pointer_subjects(void **state)
{
    (void) state;
    assert_int_equal(cond("{'body:/a~1b/~0c': {'eq': 1}}",
                          "{'body': {'a/b': {'~c': 1}}}"), T);
    assert_int_equal(cond("{'body:/items/1/id': {'eq': 'b'}}",
                          "{'body': {'items': [{'id': 'a'}, {'id': 'b'}]}}"), T);
    assert_int_equal(cond("{'body:/items/2/id': {'eq': 'b'}}",
                          "{'body': {'items': [{'id': 'a'}, {'id': 'b'}]}}"), D);
    assert_int_equal(cond("{'body:': {'eq': 'whole'}}", "{'body': 'whole'}"), T);
    assert_int_equal(cond("{'body:': {'exists': true}}", "{}"), F);
}


/* --- combinators ------------------------------------------------------------------- */

/* Subjects that are TRUE, FALSE and DOUBT in the call "tfd". */
#define TC   "'body:/t': {'eq': 1}"
#define FC   "'body:/f': {'eq': 1}"
#define DC   "'body:/missing': {'eq': 1}"
static const char *tfd = "{'body': {'t': 1, 'f': 0}}";

static void
comb_all(void **state)
{
    (void) state;
    assert_int_equal(cond("{'all': [{" TC "}, {" TC "}]}", tfd), T);
    assert_int_equal(cond("{'all': [{" TC "}, {" DC "}]}", tfd), D);
    assert_int_equal(cond("{'all': [{" DC "}, {" FC "}]}", tfd), F);
    assert_int_equal(cond("{'all': [{" FC "}, {" DC "}]}", tfd), F);
    /* members of one object are an "all" too */
    assert_int_equal(cond("{" TC ", " DC "}", tfd), D);
    assert_int_equal(cond("{" DC ", " FC "}", tfd), F);
}


static void
comb_any(void **state)
{
    (void) state;
    assert_int_equal(cond("{'any': [{" FC "}, {" TC "}]}", tfd), T);
    assert_int_equal(cond("{'any': [{" DC "}, {" TC "}]}", tfd), T);
    assert_int_equal(cond("{'any': [{" FC "}, {" DC "}]}", tfd), D);
    assert_int_equal(cond("{'any': [{" FC "}, {" FC "}]}", tfd), F);
}


static void
comb_not(void **state)
{
    (void) state;
    assert_int_equal(cond("{'not': {" TC "}}", tfd), F);
    assert_int_equal(cond("{'not': {" FC "}}", tfd), T);
    assert_int_equal(cond("{'not': {" DC "}}", tfd), D);
    assert_int_equal(cond("{'not': {'not': {" DC "}}}", tfd), D);
    assert_int_equal(cond("{'not': {'not': {" TC "}}}", tfd), T);
}


static void
comb_nested_doubt(void **state)
{
    (void) state;
    /* not(any(F, D)) = not(D) = D */
    assert_int_equal(cond("{'not': {'any': [{" FC "}, {" DC "}]}}", tfd), D);
    /* not(all(T, D)) = D;  not(all(F, D)) = T */
    assert_int_equal(cond("{'not': {'all': [{" TC "}, {" DC "}]}}", tfd), D);
    assert_int_equal(cond("{'not': {'all': [{" FC "}, {" DC "}]}}", tfd), T);
    /* any(all(T, D), not(T)) = any(D, F) = D */
    assert_int_equal(cond("{'any': [{'all': [{" TC "}, {" DC "}]}, "
                          "{'not': {" TC "}}]}", tfd), D);
    /* all(any(D, T), not(F)) = T */
    assert_int_equal(cond("{'all': [{'any': [{" DC "}, {" TC "}]}, "
                          "{'not': {" FC "}}]}", tfd), T);
    /* "not exists" of a missing subject is TRUE, not doubt */
    assert_int_equal(cond("{'not': {'body:/x': {'exists': true}}}", tfd), T);
}


/* --- time windows --------------------------------------------------------------------- */

static void
time_hours(void **state)
{
    const char *w = "{'time': {'hours': '08:00-18:00'}}";

    (void) state;
    /* 2026-11-23 is a Monday */
    assert_int_equal(cond(w, "{'time': '2026-11-23T08:00:00Z'}"), T);
    assert_int_equal(cond(w, "{'time': '2026-11-23T17:59:59Z'}"), T);
    assert_int_equal(cond(w, "{'time': '2026-11-23T18:00:00Z'}"), F);
    assert_int_equal(cond(w, "{'time': '2026-11-23T07:59:59Z'}"), F);
    /* offsets are converted to UTC */
    assert_int_equal(cond(w, "{'time': '2026-11-23T09:00:00+02:00'}"), F);
    assert_int_equal(cond(w, "{'time': '2026-11-23T10:00:00.250+02:00'}"), T);
    assert_int_equal(cond("{'time': {'hours': '00:00-24:00'}}",
                          "{'time': '2026-11-23T23:59:59Z'}"), T);
}


static void
time_days(void **state)
{
    const char *w = "{'time': {'days': ['mon', 'fri']}}";

    (void) state;
    assert_int_equal(cond(w, "{'time': '2026-11-23T12:00:00Z'}"), T);   /* mon */
    assert_int_equal(cond(w, "{'time': '2026-11-24T12:00:00Z'}"), F);   /* tue */
    assert_int_equal(cond(w, "{'time': '2026-11-27T00:00:00Z'}"), T);   /* fri */
    assert_int_equal(cond(w, "{'time': '2026-11-29T23:59:59Z'}"), F);   /* sun */
    assert_int_equal(cond("{'time': {'days': ['sun']}}",
                          "{'time': '1969-12-28T10:00:00Z'}"), T);      /* < 0 */
    assert_int_equal(cond("{'time': {'days': ['thu']}}",
                          "{'time': '1970-01-01T00:00:00Z'}"), T);
    assert_int_equal(cond("{'time': {'days': ['wed']}}",
                          "{'time': '2000-03-01T00:00:00Z'}"), T);
}


static void
time_wraps_midnight(void **state)
{
    const char *w = "{'time': {'days': ['fri'], 'hours': '22:00-06:00'}}";

    (void) state;
    assert_int_equal(cond(w, "{'time': '2026-11-27T23:00:00Z'}"), T);  /* fri */
    /* saturday 01:00 is still friday night: the window's start day counts */
    assert_int_equal(cond(w, "{'time': '2026-11-28T01:00:00Z'}"), T);
    assert_int_equal(cond(w, "{'time': '2026-11-28T06:00:00Z'}"), F);
    assert_int_equal(cond(w, "{'time': '2026-11-27T01:00:00Z'}"), F);  /* thu night */
    assert_int_equal(cond(w, "{'time': '2026-11-27T12:00:00Z'}"), F);
    assert_int_equal(cond("{'time': {'hours': '22:00-06:00'}}",
                          "{'time': '2026-11-25T05:59:00Z'}"), T);
}


/* --- precedence ----------------------------------------------------------------------- */

static void
precedence_permutations(void **state)
{
    static const char *rule[3] = {
        "{'id': 'D', 'effect': 'deny', 'tool': 't'}",
        "{'id': 'H', 'effect': 'hold', 'tool': 't', 'approvers': ['g']}",
        "{'id': 'A', 'effect': 'allow', 'tool': 't'}",
    };
    static const int perm[6][3] = {
        {0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}
    };
    char           buf[2048];
    ag_policy_t   *p;
    ag_decision_t  d;
    int            i;

    (void) state;
    for (i = 0; i < 6; i++) {
        snprintf(buf, sizeof(buf), "{'agentgov': 1, 'tools': {'t': {}}, "
                 "'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "
                 "'rules': [%s, %s, %s]}", rule[perm[i][0]], rule[perm[i][1]],
                 rule[perm[i][2]]);
        p = load(buf);
        assert_int_equal(decide(p, "{'tool': 't'}", &d), AG_DENY);
        assert_string_equal(d.rule->id, "D");
        ag_policy_free(p);
    }

    /* without the deny: hold, whatever the order */
    for (i = 0; i < 2; i++) {
        snprintf(buf, sizeof(buf), "{'agentgov': 1, 'tools': {'t': {}}, "
                 "'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "
                 "'rules': [%s, %s]}", rule[1 + i], rule[2 - i]);
        p = load(buf);
        assert_int_equal(decide(p, "{'tool': 't'}", &d), AG_HOLD);
        assert_string_equal(d.rule->id, "H");
        assert_int_equal(d.nholds, 1);
        ag_policy_free(p);
    }
}


static void
precedence_default(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    p = load("{'agentgov': 1, 'rules': [{'id': 'a', 'effect': 'allow', "
             "'method': 'GET'}]}");
    assert_int_equal(ag_policy_default(p), AG_DENY);
    assert_int_equal(decide(p, "{'method': 'POST'}", &d), AG_DENY);
    assert_null(d.rule);
    assert_string_equal(d.reason, "no rule allows this call");
    assert_int_equal(decide(p, "{'method': 'GET'}", &d), AG_ALLOW);
    assert_string_equal(d.reason, "allowed by rule a");
    ag_policy_free(p);

    p = load("{'agentgov': 1, 'default': 'allow', 'rules': [{'id': 'x', "
             "'effect': 'deny', 'method': 'DELETE', 'reason': 'no deletes'}]}");
    assert_int_equal(ag_policy_default(p), AG_ALLOW);
    assert_int_equal(decide(p, "{'method': 'GET'}", &d), AG_ALLOW);
    assert_null(d.rule);
    assert_string_equal(d.reason, "allowed by default");
    assert_int_equal(decide(p, "{'method': 'DELETE'}", &d), AG_DENY);
    assert_string_equal(d.reason, "no deletes");
    ag_policy_free(p);
}


static void
precedence_first_in_file_order(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    /* the two denies sit in different index cells; file order still rules */
    p = load("{'agentgov': 1, 'tools': {'t': {}}, 'rules': ["
             "{'id': 'wild', 'effect': 'deny'},"
             "{'id': 'exact', 'effect': 'deny', 'tool': 't', 'method': 'GET'}]}");
    decide(p, "{'tool': 't', 'method': 'GET'}", &d);
    assert_string_equal(d.rule->id, "wild");
    assert_string_equal(d.reason, "denied by rule wild");
    ag_policy_free(p);

    p = load("{'agentgov': 1, 'tools': {'t': {}}, 'rules': ["
             "{'id': 'exact', 'effect': 'deny', 'tool': 't', 'method': 'GET'},"
             "{'id': 'tool', 'effect': 'deny', 'tool': 't'},"
             "{'id': 'wild', 'effect': 'deny'}]}");
    decide(p, "{'tool': 't', 'method': 'GET'}", &d);
    assert_string_equal(d.rule->id, "exact");
    decide(p, "{'tool': 't', 'method': 'PUT'}", &d);
    assert_string_equal(d.rule->id, "tool");
    decide(p, "{'method': 'GET'}", &d);
    assert_string_equal(d.rule->id, "wild");
    ag_policy_free(p);
}


static void
holds_listed_in_order(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    p = load("{'agentgov': 1, 'tools': {'t': {}}, "
             "'groups': {'g': [{'spiffe': 'spiffe://x/y'}], "
             "           'h': [{'spiffe': 'spiffe://x/z'}]}, 'rules': ["
             "{'id': 'h1', 'effect': 'hold', 'approvers': ['g'], 'timeout': '5m'},"
             "{'id': 'a', 'effect': 'allow'},"
             "{'id': 'h2', 'effect': 'hold', 'tool': 't', 'approvers': ['h'], "
             " 'approvals': 2, 'separate_from_owner': true, 'wait': true},"
             "{'id': 'h3', 'effect': 'hold', 'tool': 't', 'method': 'POST', "
             " 'approvers': ['g'], 'escalate_after': '2m', 'escalate_to': ['h'],"
             " 'grant_ttl': '1h', 'reason': 'big'}]}");
    assert_int_equal(decide(p, "{'tool': 't', 'method': 'POST'}", &d), AG_HOLD);
    assert_int_equal(d.nholds, 3);
    assert_string_equal(d.holds[0]->id, "h1");
    assert_string_equal(d.holds[1]->id, "h2");
    assert_string_equal(d.holds[2]->id, "h3");
    assert_ptr_equal(d.rule, d.holds[0]);
    assert_string_equal(d.reason, "rule h1 requires approval");

    /* hold keys with their defaults */
    assert_int_equal(d.holds[0]->timeout, 300);
    assert_int_equal(d.holds[0]->approvals, 1);
    assert_int_equal(d.holds[0]->grant_ttl, 600);
    assert_int_equal(d.holds[0]->napprovers, 1);
    assert_string_equal(d.holds[0]->approvers[0], "g");
    assert_int_equal(d.holds[1]->approvals, 2);
    assert_true(d.holds[1]->separate_from_owner);
    assert_true(d.holds[1]->wait);
    assert_int_equal(d.holds[1]->timeout, 0);
    assert_int_equal(d.holds[2]->escalate_after, 120);
    assert_string_equal(d.holds[2]->escalate_to[0], "h");
    assert_int_equal(d.holds[2]->grant_ttl, 3600);

    assert_int_equal(decide(p, "{'tool': 't', 'method': 'GET'}", &d), AG_HOLD);
    assert_int_equal(d.nholds, 2);
    ag_policy_free(p);
}


static void
too_many_holds(void **state)
{
    char           buf[8192];
    size_t         n;
    int            i;
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    n = (size_t) snprintf(buf, sizeof(buf), "{'agentgov': 1, 'groups': {'g': "
                          "[{'spiffe': 'spiffe://x/y'}]}, 'rules': [");
    for (i = 0; i < AG_MAX_HOLD_RULES + 1; i++) {
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s{'id': 'h%d', "
                               "'effect': 'hold', 'approvers': ['g']}",
                               i ? "," : "", i);
    }
    snprintf(buf + n, sizeof(buf) - n, "]}");
    p = load(buf);
    assert_int_equal(decide(p, "{}", &d), AG_DENY);
    assert_string_equal(d.reason, "too many hold rules match");
    assert_int_equal(d.nholds, 0);
    ag_policy_free(p);

    /* exactly the maximum is still a hold */
    n = (size_t) snprintf(buf, sizeof(buf), "{'agentgov': 1, 'groups': {'g': "
                          "[{'spiffe': 'spiffe://x/y'}]}, 'rules': [");
    for (i = 0; i < AG_MAX_HOLD_RULES; i++) {
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s{'id': 'h%d', "
                               "'effect': 'hold', 'approvers': ['g']}",
                               i ? "," : "", i);
    }
    snprintf(buf + n, sizeof(buf) - n, "]}");
    p = load(buf);
    assert_int_equal(decide(p, "{}", &d), AG_HOLD);
    assert_int_equal(d.nholds, AG_MAX_HOLD_RULES);
    assert_string_equal(d.holds[AG_MAX_HOLD_RULES - 1]->id, "h15");
    ag_policy_free(p);
}


static void
doubt_at_the_rule(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    /* the SPEC's example: "9000" for gt is doubt, and the hold matches */
    p = load("{'agentgov': 1, 'tools': {'payments': {}}, "
             "'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, 'rules': ["
             "{'id': 'large', 'effect': 'hold', 'tool': 'payments', "
             " 'when': {'body:/amount': {'gt': 5000}}, 'approvers': ['g']},"
             "{'id': 'ok', 'effect': 'allow', 'tool': 'payments', "
             " 'when': {'body:/amount': {'le': 5000}}}]}");
    assert_int_equal(decide(p, "{'tool': 'payments', 'body': {'amount': 9000}}",
                            &d), AG_HOLD);
    assert_int_equal(decide(p, "{'tool': 'payments', 'body': {'amount': '9000'}}",
                            &d), AG_HOLD);
    assert_int_equal(decide(p, "{'tool': 'payments', 'body': {'amount': 10}}",
                            &d), AG_ALLOW);
    assert_int_equal(decide(p, "{'tool': 'payments'}", &d), AG_HOLD);
    ag_policy_free(p);

    /* an allow rule alone: doubt never allows */
    p = load("{'agentgov': 1, 'rules': [{'id': 'ok', 'effect': 'allow', "
             "'when': {'body:/amount': {'le': 5000}}}]}");
    assert_int_equal(decide(p, "{'body': {'amount': '10'}}", &d), AG_DENY);
    assert_null(d.rule);
    ag_policy_free(p);
}


/* --- monitor mode and tags ------------------------------------------------------------ */

static void
monitor_mode(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    p = load("{'agentgov': 1, 'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "
             "'rules': ["
             "{'id': 'md', 'effect': 'deny', 'mode': 'monitor', 'method': 'DELETE'},"
             "{'id': 'mh', 'effect': 'hold', 'mode': 'monitor', 'approvers': ['g'],"
             " 'method': ['DELETE', 'PUT']},"
             "{'id': 'ma', 'effect': 'allow', 'mode': 'monitor'},"
             "{'id': 'a', 'effect': 'allow', 'method': ['GET', 'DELETE', 'PUT']},"
             "{'id': 'd', 'effect': 'deny', 'method': 'POST'}]}");

    /* enforced allow, a monitor deny would have been stronger */
    assert_int_equal(decide(p, "{'method': 'DELETE'}", &d), AG_ALLOW);
    assert_string_equal(d.rule->id, "a");
    assert_int_equal(d.monitor_effect, AG_DENY);
    assert_string_equal(d.monitor_rule->id, "md");

    assert_int_equal(decide(p, "{'method': 'PUT'}", &d), AG_ALLOW);
    assert_int_equal(d.monitor_effect, AG_HOLD);
    assert_string_equal(d.monitor_rule->id, "mh");

    /* nothing stronger than allow: nothing reported; a monitor allow never
       changes the default deny */
    assert_int_equal(decide(p, "{'method': 'GET'}", &d), AG_ALLOW);
    assert_int_equal(d.monitor_effect, AG_EFFECT_NONE);
    assert_null(d.monitor_rule);
    assert_int_equal(decide(p, "{'method': 'PATCH'}", &d), AG_DENY);
    assert_null(d.rule);
    assert_int_equal(d.monitor_effect, AG_EFFECT_NONE);

    /* enforced deny: monitor rules are never stronger */
    assert_int_equal(decide(p, "{'method': 'POST'}", &d), AG_DENY);
    assert_int_equal(d.monitor_effect, AG_EFFECT_NONE);
    ag_policy_free(p);
}


static void
monitor_hold_under_enforced_hold(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    p = load("{'agentgov': 1, 'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "
             "'rules': ["
             "{'id': 'mh', 'effect': 'hold', 'mode': 'monitor', 'approvers': ['g']},"
             "{'id': 'h', 'effect': 'hold', 'approvers': ['g']},"
             "{'id': 'md', 'effect': 'deny', 'mode': 'monitor', "
             " 'when': {'body:/x': {'eq': 1}}}]}");
    assert_int_equal(decide(p, "{'body': {'x': 2}}", &d), AG_HOLD);
    assert_int_equal(d.nholds, 1);          /* the monitor hold is not listed */
    assert_string_equal(d.holds[0]->id, "h");
    assert_int_equal(d.monitor_effect, AG_EFFECT_NONE);
    /* doubt in a monitor deny: would-be deny */
    assert_int_equal(decide(p, "{}", &d), AG_HOLD);
    assert_int_equal(d.monitor_effect, AG_DENY);
    assert_string_equal(d.monitor_rule->id, "md");
    ag_policy_free(p);
}


static void
tags_and_rule_fields(void **state)
{
    ag_policy_t      *p;
    ag_decision_t     d;
    const ag_rule_t  *r;

    (void) state;
    p = load("{'agentgov': 1, 'rules': ["
             "{'id': 'x', 'effect': 'deny', 'mode': 'enforce', "
             " 'tags': ['OWASP-AGENTIC-A03', 'NIST-AI-RMF-GOVERN'], "
             " 'when': {'body:/a': {'gt': 1}, 'header:X-A': {'eq': 'q'}, "
             "          'time': {'hours': '00:00-24:00'}, "
             "          'any': [{'body:/a': {'lt': 9}}, {'query:z': {'eq': '1'}}]}}]}");
    decide(p, "{'body': {'a': 2}, 'headers': {'X-A': 'q'}}", &d);
    r = d.rule;
    assert_non_null(r);
    assert_int_equal(r->ntags, 2);
    assert_string_equal(r->tags[0], "OWASP-AGENTIC-A03");
    assert_string_equal(r->tags[1], "NIST-AI-RMF-GOVERN");
    assert_int_equal(r->mode, AG_MODE_ENFORCE);
    assert_int_equal(r->index, 0);
    assert_null(r->reason);
    assert_int_equal(r->nreads, 3);
    assert_string_equal(r->reads[0], "body:/a");
    assert_string_equal(r->reads[1], "header:X-A");
    assert_string_equal(r->reads[2], "query:z");
    assert_ptr_equal(ag_policy_rule(p, "x", 1), r);
    assert_null(ag_policy_rule(p, "y", 1));
    assert_string_equal(ag_effect_name(AG_HOLD), "hold");
    assert_string_equal(ag_effect_name(AG_EFFECT_NONE), "none");
    ag_policy_free(p);
}


/* --- the index: which rules a call looks at ----------------------------------------- */

typedef struct {
    char    ids[1024];
    char    why[1024];
    int     n;
} seen_t;


static void
seen(void *data, const ag_rule_t *r, int matched, const char *why)
{
    seen_t  *s = data;
    size_t   len = strlen(s->ids);

    snprintf(s->ids + len, sizeof(s->ids) - len, "%s%s%s", s->n ? " " : "",
             r->id, matched ? "+" : "");
    len = strlen(s->why);
    snprintf(s->why + len, sizeof(s->why) - len, "%s%s: %s", s->n ? "\n" : "",
             r->id, why);
    s->n++;
}


static const char *
selected(ag_policy_t *p, const char *call, seen_t *s, ag_decision_t *d)
{
    tcall_t        tc;
    ag_decision_t  local;

    memset(s, 0, sizeof(seen_t));
    mkcall(&tc, call);
    assert_int_equal(ag_policy_eval(p, &tc.c, d ? d : &local, seen, s), 0);
    json_decref(tc.obj);
    return s->ids;
}


static const char *index_policy =
    "{'agentgov': 1, 'tools': {'A': {}, 'B': {}}, 'rules': ["
    "{'id': 'r0', 'effect': 'allow', 'tool': 'A'},"
    "{'id': 'r1', 'effect': 'allow', 'tool': 'B'},"
    "{'id': 'r2', 'effect': 'deny', 'path': '/never'},"
    "{'id': 'r3', 'effect': 'deny', 'tool': 'A', 'method': 'POST'},"
    "{'id': 'r4', 'effect': 'allow', 'tool': ['A', 'B'], 'method': ['GET', 'GET']},"
    "{'id': 'r5', 'effect': 'allow', 'method': 'GET', 'mode': 'monitor'},"
    "{'id': 'r6', 'effect': 'deny', 'tool': 'B', 'method': ['PUT', 'GET']}]}";


static void
index_by_tool(void **state)
{
    ag_policy_t  *p;
    seen_t        s;

    (void) state;
    p = load(index_policy);
    /* every selected rule, once, in file order */
    assert_string_equal(selected(p, "{'tool': 'A', 'method': 'GET'}", &s, NULL),
                        "r0+ r2 r4+ r5+");
    assert_string_equal(selected(p, "{'tool': 'B', 'method': 'GET'}", &s, NULL),
                        "r1+ r2 r4+ r5+ r6+");
    /* a rule for tool A is never looked at for tool B, and the reverse */
    assert_string_equal(selected(p, "{'tool': 'B', 'method': 'POST'}", &s, NULL),
                        "r1+ r2");
    assert_string_equal(selected(p, "{'tool': 'A', 'method': 'POST'}", &s, NULL),
                        "r0+ r2 r3+");
    /* unknown or no tool: only the rules that name no tool */
    assert_string_equal(selected(p, "{'tool': 'C', 'method': 'GET'}", &s, NULL),
                        "r2 r5+");
    assert_string_equal(selected(p, "{'method': 'GET'}", &s, NULL), "r2 r5+");
    /* no method: only the rules that name no method */
    assert_string_equal(selected(p, "{'tool': 'A'}", &s, NULL), "r0+ r2");
    ag_policy_free(p);
}


static void
index_decisions(void **state)
{
    ag_policy_t   *p;
    ag_decision_t  d;

    (void) state;
    p = load(index_policy);
    assert_int_equal(decide(p, "{'tool': 'A', 'method': 'POST'}", &d), AG_DENY);
    assert_string_equal(d.rule->id, "r3");
    assert_int_equal(decide(p, "{'tool': 'B', 'method': 'POST'}", &d), AG_ALLOW);
    assert_string_equal(d.rule->id, "r1");
    assert_int_equal(decide(p, "{'tool': 'B', 'method': 'PUT'}", &d), AG_DENY);
    assert_string_equal(d.rule->id, "r6");
    assert_int_equal(decide(p, "{'tool': 'A', 'method': 'PUT'}", &d), AG_ALLOW);
    assert_string_equal(d.rule->id, "r0");
    assert_int_equal(decide(p, "{'tool': 'C', 'method': 'GET'}", &d), AG_DENY);
    assert_null(d.rule);
    /* no method: the method-less cells only */
    assert_int_equal(decide(p, "{'tool': 'A', 'path': '/never'}", &d), AG_DENY);
    assert_string_equal(d.rule->id, "r2");
    ag_policy_free(p);
}


static void
trace_reasons(void **state)
{
    ag_policy_t   *p;
    seen_t         s;
    ag_decision_t  d;

    (void) state;
    p = load("{'agentgov': 1, 'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "
             "'agents': {'bot': {'spiffe': 'spiffe://x/bot', 'owner': 'o'}}, "
             "'rules': ["
             "{'id': 'amt', 'effect': 'hold', 'approvers': ['g'], "
             " 'when': {'body:/amount': {'gt': 5000}}},"
             "{'id': 'who', 'effect': 'allow', 'agent': 'bot'},"
             "{'id': 'p', 'effect': 'allow', 'path': ['/a/*', '/b']},"
             "{'id': 'amt2', 'effect': 'allow', "
             " 'when': {'body:/amount': {'lt': 5000}}},"
             "{'id': 'n', 'effect': 'deny', 'when': {'not': {'body:/x': {'exists': false}}}}]}");

    selected(p, "{'path': '/c', 'body': {'amount': 10}}", &s, &d);
    assert_string_equal(s.ids, "amt who p amt2+ n");
    assert_int_equal(d.effect, AG_ALLOW);
    assert_non_null(strstr(s.why, "amt: when body:/amount gt 5000: false"));
    assert_non_null(strstr(s.why, "who: no agent in the call (rule wants [bot])"));
    assert_non_null(strstr(s.why, "p: path /c not in [/a/*, /b]"));
    assert_non_null(strstr(s.why, "amt2: matches"));
    assert_non_null(strstr(s.why, "n: when not: the inner condition holds"));

    selected(p, "{'agent': 'x', 'path': '/c'}", &s, &d);
    assert_string_equal(s.ids, "amt+ who p amt2 n");
    assert_int_equal(d.effect, AG_HOLD);
    assert_non_null(strstr(s.why, "amt: when body:/amount: missing "
                                  "(doubt \xe2\x86\x92 matches hold)"));
    assert_non_null(strstr(s.why, "who: agent x not in [bot]"));
    assert_non_null(strstr(s.why, "amt2: when body:/amount: missing "
                                  "(doubt \xe2\x86\x92 no match for allow)"));

    selected(p, "{'body': {'amount': '9000'}}", &s, &d);
    assert_non_null(strstr(s.why, "amt: when body:/amount gt 5000: not a "
                                  "number (doubt \xe2\x86\x92 matches hold)"));
    ag_policy_free(p);
}


static void
trace_same_decision(void **state)
{
    static const char *calls[] = {
        "{'tool': 'A', 'method': 'GET'}", "{'tool': 'A', 'method': 'POST'}",
        "{'tool': 'B', 'method': 'PUT'}", "{'tool': 'B', 'method': 'DELETE'}",
        "{'tool': 'C'}", "{'path': '/never'}", "{}",
    };
    ag_policy_t   *p;
    ag_decision_t  a, b;
    seen_t         s;
    tcall_t        tc;
    size_t         i, k;

    (void) state;
    p = load(index_policy);
    for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        mkcall(&tc, calls[i]);
        memset(&s, 0, sizeof(s));
        assert_int_equal(ag_policy_eval(p, &tc.c, &a, NULL, NULL), 0);
        assert_int_equal(ag_policy_eval(p, &tc.c, &b, seen, &s), 0);
        assert_int_equal(a.effect, b.effect);
        assert_ptr_equal(a.rule, b.rule);
        assert_string_equal(a.reason, b.reason);
        assert_int_equal(a.nholds, b.nholds);
        for (k = 0; k < a.nholds; k++) {
            assert_ptr_equal(a.holds[k], b.holds[k]);
        }
        assert_int_equal(a.monitor_effect, b.monitor_effect);
        assert_ptr_equal(a.monitor_rule, b.monitor_rule);
        json_decref(tc.obj);
    }
    ag_policy_free(p);
}


/* --- match fields ------------------------------------------------------------------ */

static void
match_fields(void **state)
{
    ag_policy_t  *p;

    (void) state;
    p = load("{'agentgov': 1, 'default': 'allow', "
             "'agents': {'bot': {'spiffe': 'spiffe://x/bot', 'owner': 'o'}}, "
             "'tools': {'t': {'hosts': ['api.example.org']}}, "
             "'intents': {'i': {'agents': ['bot'], 'tools': ['t'], 'max_ttl': '1m'}}, "
             "'rules': ["
             "{'id': 'a', 'effect': 'deny', 'agent': ['bot'], 'intent': 'i'},"
             "{'id': 'o', 'effect': 'deny', 'owner': ['team-x', 'team-y']},"
             "{'id': 'h', 'effect': 'deny', 'host': ['*.EVIL.org']},"
             "{'id': 'r', 'effect': 'deny', 'path': {'regex': '/v[0-9]+/admin(/.*)?'}},"
             "{'id': 'm', 'effect': 'deny', 'mcp': {'method': 'tools/call', "
             " 'tool': ['rm_*', 'drop'], 'resource': 'file:///etc/**', 'prompt': 'p*'}}]}");

    assert_int_equal(decide(p, "{'agent': 'bot', 'intent': 'i'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'agent': 'bot'}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'intent': 'i'}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'owner': 'team-y'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'owner': 'team-z'}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'host': 'a.b.evil.org'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'host': 'evil.org'}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'path': '/v2/admin'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'path': '/v2/admin/users'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'path': '/v2/administrator'}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'path': '/x/v2/admin'}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'mcp': {'method': 'tools/call', 'tool': 'rm_rf', "
                            "'resource': 'file:///etc/passwd', 'prompt': 'px'}}",
                            NULL), AG_DENY);
    assert_int_equal(decide(p, "{'mcp': {'method': 'tools/call', 'tool': 'rm_rf', "
                            "'resource': 'file:///etc/passwd'}}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'mcp': {'method': 'tools/list', 'tool': 'drop', "
                            "'resource': 'file:///etc/x', 'prompt': 'p'}}", NULL),
                     AG_ALLOW);
    ag_policy_free(p);
}


/* tools/list filtering: whether some call of the tool might be allowed */
static int
may(ag_policy_t *p, const char *call)
{
    tcall_t  tc;
    int      rc;

    mkcall(&tc, call);
    rc = ag_policy_may_call(p, &tc.c);
    json_decref(tc.obj);
    return rc;
}

#define MCP_CALL(tool)                                                        \
    "{'agent': 'bot', 'tool': 'files', 'method': 'POST', "                     \
    " 'mcp': {'method': 'tools/call', 'tool': '" tool "'}}"

static void
may_call(void **state)
{
    ag_policy_t  *p;

    (void) state;
    p = load("{'agentgov': 1, 'default': 'deny', "
             "'agents': {'bot': {'spiffe': 'spiffe://x/bot', 'owner': 'o'}, "
             "           'bob': {'spiffe': 'spiffe://x/bob', 'owner': 'o'}}, "
             "'groups': {'ops': [{'spiffe': 'spiffe://x/ops'}]}, "
             "'tools': {'files': {'protocol': 'mcp'}, "
             "          'other': {'protocol': 'mcp'}}, "
             "'rules': ["
             "{'id': 'read', 'effect': 'allow', 'tool': 'files', "
             " 'mcp': {'tool': ['read_file', 'list_dir']}, "
             " 'when': {'args:/path': {'glob': '/srv/**'}}},"
             "{'id': 'get', 'effect': 'allow', 'tool': 'files', "
             " 'mcp': {'tool': 'get_*'}},"
             "{'id': 'rm', 'effect': 'deny', 'tool': 'files', "
             " 'mcp': {'tool': 'rm_*'}},"
             "{'id': 'rm-ok', 'effect': 'allow', 'tool': 'files', "
             " 'mcp': {'tool': 'rm_tmp'}},"
             "{'id': 'w', 'effect': 'deny', 'tool': 'files', "
             " 'mcp': {'tool': 'write_file'}, "
             " 'when': {'args:/path': {'glob': '/etc/**'}}},"
             "{'id': 'w-ok', 'effect': 'allow', 'tool': 'files', "
             " 'mcp': {'tool': 'write_file'}},"
             "{'id': 'only-deny', 'effect': 'deny', 'tool': 'files', "
             " 'mcp': {'tool': 'chmod'}, 'when': {'args:/mode': {'eq': 777}}},"
             "{'id': 'wipe', 'effect': 'hold', 'tool': 'files', "
             " 'mcp': {'tool': 'wipe'}, 'approvers': ['ops'], "
             " 'when': {'args:/all': {'eq': true}}},"
             "{'id': 'mon-deny', 'effect': 'deny', 'mode': 'monitor', "
             " 'tool': 'files', 'mcp': {'tool': 'get_secret'}},"
             "{'id': 'mon-allow', 'effect': 'allow', 'mode': 'monitor', "
             " 'tool': 'files', 'mcp': {'tool': 'peek'}},"
             "{'id': 'bob', 'effect': 'deny', 'agent': 'bob', "
             " 'mcp': {'tool': 'get_*'}},"
             "{'id': 'anywhere', 'effect': 'allow', 'mcp': {'tool': 'ping*'}}"
             "]}");

    /* an allow whose conditions read the arguments: it may pass */
    assert_int_equal(may(p, MCP_CALL("read_file")), 1);
    assert_int_equal(may(p, MCP_CALL("list_dir")), 1);
    /* mcp.tool globs */
    assert_int_equal(may(p, MCP_CALL("get_x")), 1);
    assert_int_equal(may(p, MCP_CALL("getx")), 0);
    assert_int_equal(may(p, MCP_CALL("rm_rf")), 0);
    /* a deny without "when" wins over any allow */
    assert_int_equal(may(p, MCP_CALL("rm_tmp")), 0);
    /* a deny with "when" leaves room for the allow */
    assert_int_equal(may(p, MCP_CALL("write_file")), 1);
    /* ... but no allow: the default decides */
    assert_int_equal(may(p, MCP_CALL("chmod")), 0);
    /* no rule at all, default deny */
    assert_int_equal(may(p, MCP_CALL("cat")), 0);
    /* a hold may pass once approved */
    assert_int_equal(may(p, MCP_CALL("wipe")), 1);
    /* monitor-mode rules change nothing */
    assert_int_equal(may(p, MCP_CALL("get_secret")), 1);
    assert_int_equal(may(p, MCP_CALL("peek")), 0);
    /* other match keys still count */
    assert_int_equal(may(p, "{'agent': 'bob', 'tool': 'files', 'method': "
                            "'POST', 'mcp': {'method': 'tools/call', "
                            "'tool': 'get_x'}}"), 0);
    assert_int_equal(may(p, "{'tool': 'other', 'method': 'POST', 'mcp': "
                            "{'method': 'tools/call', 'tool': 'read_file'}}"),
                     0);
    /* rules that name no tool are found through the index too */
    assert_int_equal(may(p, "{'tool': 'other', 'method': 'POST', 'mcp': "
                            "{'method': 'tools/call', 'tool': 'ping2'}}"), 1);
    ag_policy_free(p);

    /* default allow: listed unless a deny without "when" matches */
    p = load("{'agentgov': 1, 'default': 'allow', "
             "'tools': {'files': {'protocol': 'mcp'}}, 'rules': ["
             "{'id': 'rm', 'effect': 'deny', 'tool': 'files', "
             " 'mcp': {'tool': 'rm_*'}},"
             "{'id': 'w', 'effect': 'deny', 'tool': 'files', "
             " 'mcp': {'tool': 'write_file'}, "
             " 'when': {'args:/path': {'glob': '/etc/**'}}}]}");
    assert_int_equal(may(p, MCP_CALL("cat")), 1);
    assert_int_equal(may(p, MCP_CALL("write_file")), 1);
    assert_int_equal(may(p, MCP_CALL("rm_rf")), 0);
    ag_policy_free(p);

    p = load("{'agentgov': 1, 'tools': {'files': {'protocol': 'mcp'}}}");
    assert_int_equal(may(p, MCP_CALL("cat")), 0);
    ag_policy_free(p);
}


static void
empty_fields_never_match(void **state)
{
    ag_policy_t  *p;

    (void) state;
    /* '**' matches the empty string as a glob, but an absent path never
       matches a rule that constrains paths */
    p = load("{'agentgov': 1, 'default': 'allow', 'rules': ["
             "{'id': 'p', 'effect': 'deny', 'path': '**'},"
             "{'id': 'h', 'effect': 'deny', 'host': '*'},"
             "{'id': 'r', 'effect': 'deny', 'path': {'regex': '.*'}},"
             "{'id': 'm', 'effect': 'deny', 'mcp': {'tool': '**'}}]}");
    assert_int_equal(decide(p, "{}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'path': ''}", NULL), AG_ALLOW);
    assert_int_equal(decide(p, "{'path': '/'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'host': 'x'}", NULL), AG_DENY);
    assert_int_equal(decide(p, "{'mcp': {'tool': 'x'}}", NULL), AG_DENY);
    ag_policy_free(p);
}


static void
path_regex_doubt(void **state)
{
    ag_policy_t  *p;
    char          call[256];

    (void) state;
    snprintf(call, sizeof(call), "{'path': '/%s'}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    p = load("{'agentgov': 1, 'default': 'allow', 'rules': ["
             "{'id': 'r', 'effect': 'deny', 'path': {'regex': '/(a+)+$'}}]}");
    assert_int_equal(decide(p, call, NULL), AG_DENY);
    ag_policy_free(p);
    p = load("{'agentgov': 1, 'rules': ["
             "{'id': 'r', 'effect': 'allow', 'path': {'regex': '/(a+)+$'}}]}");
    assert_int_equal(decide(p, call, NULL), AG_DENY);
    assert_int_equal(decide(p, "{'path': '/aaa'}", NULL), AG_ALLOW);
    ag_policy_free(p);
}


/* --- validation: every error names its JSON path -------------------------------------- */

#define P0  "{'agentgov': 1, "
#define GRP "'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "

static void
invalid_top(void **state)
{
    (void) state;
    load_fails("{}", "/agentgov: expected 1");
    load_fails("{'agentgov': 2}", "/agentgov: expected 1");
    load_fails("{'agentgov': '1'}", "/agentgov: expected 1");
    load_fails("{'agentgov': 1, 'rule': []}", "/rule: unknown key");
    load_fails("[]", "/: expected an object");
    load_fails(P0 "'default': 'hold'}", "/default: expected one of allow, deny");
    load_fails(P0 "'rules': {}}", "/rules: expected an array");
    load_fails(P0 "'strip': {'headers': ['X-A'], 'cookies': []}}",
               "/strip/cookies: unknown key");
    load_fails(P0 "'strip': {'headers': ['bad header']}}",
               "/strip/headers/0: invalid header name");
    load_fails(P0 "'strip': {'query': 'token'}}",
               "/strip/query: expected an array of strings");
}


static void
invalid_json(void **state)
{
    char          err[256];
    ag_policy_t  *p;

    (void) state;
    p = ag_policy_load("{\"agentgov\": 1, \"agentgov\": 1}", 30, err,
                       sizeof(err));
    assert_null(p);
    assert_non_null(strstr(err, "duplicate"));
    p = ag_policy_load("{\"agentgov\": 1,}", 16, err, sizeof(err));
    assert_null(p);
    assert_non_null(strstr(err, "malformed JSON at byte"));
    p = ag_policy_load("", 0, err, sizeof(err));
    assert_null(p);

    /* a NUL inside a pattern or a strip name would cut it short: the
       parser refuses it (and the loader would too) */
    {
        static const char  nul[] = "{\"agentgov\": 1, \"secret_patterns\": "
                                   "{\"x\": \"ab\\u0000cd\"}}";

        p = ag_policy_load(nul, sizeof(nul) - 1, err, sizeof(err));
        assert_null(p);
        assert_non_null(strstr(err, "u0000"));
    }
}


static void
invalid_rules(void **state)
{
    (void) state;
    load_fails(P0 "'rules': [{'effect': 'allow'}]}", "/rules/0/id: required");
    load_fails(P0 "'rules': [{'id': 'a b', 'effect': 'allow'}]}",
               "/rules/0/id: invalid name \"a b\" (1 to 128 letters, digits "
               "and . _ : @ -, not starting with . : @ -)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow'}, "
               "{'id': 'b', 'effect': 'allow'}, {'id': 'c', 'effect': 'permit'}]}",
               "/rules/2/effect: expected one of allow, deny, hold");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow'}, "
               "{'id': 'y', 'effect': 'deny'}, {'id': 'y', 'effect': 'deny'}, "
               "{'id': 'a', 'effect': 'deny'}]}",
               "/rules/2/id: duplicate rule id \"y\"");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'tools': 't'}]}",
               "/rules/0/tools: unknown key");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'mode': 'audit'}]}",
               "/rules/0/mode: expected one of enforce, monitor");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'reason': 5}]}",
               "/rules/0/reason: expected a non-empty string");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'tags': ['x', 1]}]}",
               "/rules/0/tags/1: expected a non-empty string");
    load_fails(P0 "'rules': ['x']}", "/rules/0: expected an object");
}


static void
invalid_references(void **state)
{
    (void) state;
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'tool': 'x'}]}",
               "/rules/0/tool: undefined tool \"x\"");
    load_fails(P0 "'tools': {'t': {}}, 'rules': [{'id': 'a', 'effect': 'allow', "
               "'tool': ['t', 'x']}]}", "/rules/0/tool/1: undefined tool \"x\"");
    load_fails(P0 "'tools': {'t': {}}, 'rules': [{'id': 'a', 'effect': 'allow', "
               "'tool': []}]}",
               "/rules/0/tool: expected a string or a non-empty array of strings");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'agent': 'bot'}]}",
               "/rules/0/agent: undefined agent \"bot\"");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'intent': ['i']}]}",
               "/rules/0/intent/0: undefined intent \"i\"");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g']}]}",
               "/rules/0/approvers/0: undefined group \"g\"");
    load_fails(P0 "'admins': ['root']}", "/admins/0: undefined group \"root\"");
    load_fails(P0 GRP "'auditors': 'g'}",
               "/auditors: expected an array of group names");
}


static void
invalid_match_fields(void **state)
{
    (void) state;
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'method': 'get'}]}",
               "/rules/0/method: expected an HTTP method in upper case");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'method': ['GET', 'P0ST']}]}",
               "/rules/0/method/1: expected an HTTP method in upper case");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'path': 'v1/x'}]}",
               "/rules/0/path: a path glob starts with '/' or '*'");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'path': {'regex': 'a(b'}}]}",
               "/rules/0/path/regex: invalid regex: missing closing parenthesis "
               "at offset 3");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'path': {'glob': '/x'}}]}", "/rules/0/path/glob: unknown key");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'mcp': {'tools': 'x'}}]}", "/rules/0/mcp/tools: unknown key");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'mcp': {}}]}",
               "/rules/0/mcp: expected method, tool, resource or prompt");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'owner': ''}]}",
               "/rules/0/owner: expected a non-empty string");
}


static void
invalid_hold_keys(void **state)
{
    (void) state;
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'allow', "
               "'approvers': ['g']}]}", "/rules/0/approvers: only for hold rules");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'deny', 'wait': true}]}",
               "/rules/0/wait: only for hold rules");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold'}]}",
               "/rules/0/approvers: required for a hold rule");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': []}]}",
               "/rules/0/approvers: expected a non-empty array of group names");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'timeout': '10 m'}]}", "/rules/0/timeout: expected a duration like "
               "\"90s\", \"10m\", \"1h\" or \"2d\"");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'grant_ttl': '0m'}]}",
               "/rules/0/grant_ttl: a duration must be longer than 0");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'timeout': '3651d'}]}",
               "/rules/0/timeout: a duration must be at most 3650d");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'timeout': '9999999999999999s'}]}",
               "/rules/0/timeout: a duration must be at most 3650d");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'approvals': 0}]}",
               "/rules/0/approvals: expected an integer from 1 to 100");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'separate_from_owner': 'yes'}]}",
               "/rules/0/separate_from_owner: expected true or false");
    load_fails(P0 GRP "'rules': [{'id': 'a', 'effect': 'hold', 'approvers': ['g'], "
               "'escalate_to': ['g']}]}",
               "/rules/0: escalate_after and escalate_to go together");
}


static void
invalid_when(void **state)
{
    (void) state;
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow'}, {'id': 'b', 'effect': "
               "'allow'}, {'id': 'c', 'effect': 'allow'}, {'id': 'd', 'effect': "
               "'hold', 'approvers': ['g'], 'when': {'body:/amount': {'gt': '5000'}}}]"
               ", " GRP "'default': 'deny'}",
               "/rules/3/when/body:/amount/gt: expected a number");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'like': 'x'}}}]}",
               "/rules/0/when/body:/a/like: unknown operator (expected eq, ne, in, "
               "glob, regex, gt, ge, lt, le or exists)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'cookie:x': {'eq': 'x'}}}]}",
               "/rules/0/when/cookie:x: unknown condition (expected all, any, not, "
               "time, chain, depth, header:<name>, query:<name>, body:<pointer> or "
               "args:<pointer>)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:a': {'eq': 'x'}}}]}",
               "/rules/0/when/body:a: a JSON pointer is empty or starts with '/'");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'args:/a~2': {'eq': 'x'}}}]}",
               "/rules/0/when/args:/a~2: bad escape in JSON pointer (only ~0 and ~1)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'header:': {'eq': 'x'}}}]}",
               "/rules/0/when/header:: a header name is required after ':'");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'header:a b': {'eq': 'x'}}}]}",
               "/rules/0/when/header:a b: invalid header name");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', 'when': {}}]}",
               "/rules/0/when: expected an object with at least one condition");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': 5}}]}",
               "/rules/0/when/body:/a: expected an object of operators (eq, ne, in, "
               "glob, regex, gt, ge, lt, le, exists)");
}


static void
invalid_when_operands(void **state)
{
    (void) state;
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'eq': [1]}}}]}",
               "/rules/0/when/body:/a/eq: expected a string, number, boolean or null");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'in': []}}}]}",
               "/rules/0/when/body:/a/in: expected a non-empty array");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'in': ['x', {}]}}}]}",
               "/rules/0/when/body:/a/in/1: expected a string, number, boolean or "
               "null");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'regex': '(?<'}}}]}",
               "/rules/0/when/body:/a/regex: invalid regex: subpattern name expected "
               "at offset 3");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'glob': 5}}}]}",
               "/rules/0/when/body:/a/glob: expected a string");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'body:/a': {'exists': 1}}}]}",
               "/rules/0/when/body:/a/exists: expected true or false");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'depth': {'regex': '1'}}}]}",
               "/rules/0/when/depth/regex: not for depth, which is an integer");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'chain': {'gt': 1}}}]}",
               "/rules/0/when/chain/gt: not for chain, which is a string");
}


static void
invalid_combinators(void **state)
{
    char    buf[4096];
    size_t  n;
    int     i;

    (void) state;
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'all': []}}]}",
               "/rules/0/when/all: expected a non-empty array of conditions");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'any': [{'body:/a': {'eq': 1}}, 5]}}]}",
               "/rules/0/when/any/1: expected an object with at least one "
               "condition");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'not': {'all': [{'body:/a': {'eq': []}}]}}}]}",
               "/rules/0/when/not/all/0/body:/a/eq: expected a string, number, "
               "boolean or null");

    /* 16 levels load; 17 are refused */
    for (i = 16; i <= 17; i++) {
        int k;

        n = (size_t) snprintf(buf, sizeof(buf), P0 "'rules': [{'id': 'a', "
                              "'effect': 'allow', 'when': ");
        for (k = 0; k < i; k++) {
            n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{'not': ");
        }
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{'depth': {'eq': 0}}");
        for (k = 0; k < i; k++) {
            n += (size_t) snprintf(buf + n, sizeof(buf) - n, "}");
        }
        snprintf(buf + n, sizeof(buf) - n, "}]}");
        if (i == 16) {
            ag_policy_free(load(buf));
        } else {
            load_fails(buf, "/rules/0/when/not/not/not/not/not/not/not/not/not/"
                       "not/not/not/not/not/not/not/not: nesting too deep (more "
                       "than 16 levels of all, any and not)");
        }
    }
}


static void
invalid_time(void **state)
{
    (void) state;
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'hours': '8:00-18:00'}}}]}",
               "/rules/0/when/time/hours: expected \"HH:MM-HH:MM\" (UTC, 00:00 to "
               "24:00)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'hours': '08:00-24:01'}}}]}",
               "/rules/0/when/time/hours: expected \"HH:MM-HH:MM\" (UTC, 00:00 to "
               "24:00)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'hours': '24:00-01:00'}}}]}",
               "/rules/0/when/time/hours: expected \"HH:MM-HH:MM\" (UTC, 00:00 to "
               "24:00)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'hours': '08:60-09:00'}}}]}",
               "/rules/0/when/time/hours: expected \"HH:MM-HH:MM\" (UTC, 00:00 to "
               "24:00)");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'hours': '08:00-08:00'}}}]}",
               "/rules/0/when/time/hours: empty time window");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'days': ['mon', 'Tue']}}}]}",
               "/rules/0/when/time/days/1: expected one of mon, tue, wed, thu, fri, "
               "sat, sun");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'days': ['mon', 'mon']}}}]}",
               "/rules/0/when/time/days/1: duplicate day");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'days': []}}}]}",
               "/rules/0/when/time/days: expected a non-empty array of days");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {}}}]}",
               "/rules/0/when/time: expected an object with days, hours or both");
    load_fails(P0 "'rules': [{'id': 'a', 'effect': 'allow', "
               "'when': {'time': {'tz': 'UTC'}}}]}",
               "/rules/0/when/time/tz: unknown key (expected days or hours)");
}


static void
invalid_tools(void **state)
{
    (void) state;
    load_fails(P0 "'tools': {'t': {'host': ['a']}}}", "/tools/t/host: unknown key");
    load_fails(P0 "'tools': {'t': {'protocol': 'grpc'}}}",
               "/tools/t/protocol: expected one of http, mcp");
    load_fails(P0 "'tools': {'t': {'hosts': ['a.b:443']}}}",
               "/tools/t/hosts/0: expected a host name without port, or *.domain");
    load_fails(P0 "'tools': {'t': {'hosts': ['a..b']}}}",
               "/tools/t/hosts/0: expected a host name without port, or *.domain");
    load_fails(P0 "'tools': {'t': {'hosts': ['A.b']}, 'u': {'hosts': ['a.B']}}}",
               "/tools/u/hosts: host \"a.b\" is also listed by tool \"t\"");
    load_fails(P0 "'tools': {'t': {'hosts': ['*.b']}, 'u': {'hosts': ['*.b']}}}",
               "/tools/u/hosts: host \"*.b\" is also listed by tool \"t\"");
    load_fails(P0 "'tools': {'t': {'upstream': 'ftp://x'}}}",
               "/tools/t/upstream: expected http:// or https:// and a host, without "
               "a trailing '/', query or fragment");
    load_fails(P0 "'tools': {'t': {'upstream': 'https://x/'}}}",
               "/tools/t/upstream: expected http:// or https:// and a host, without "
               "a trailing '/', query or fragment");
    load_fails(P0 "'agents': {'..': {'owner': 'o', 'spiffe': 'spiffe://x/y'}}}",
               "/agents/..: invalid name \"..\" (1 to 128 letters, digits and . _ "
               ": @ -, not starting with . : @ -)");
    load_fails(P0 "'tools': {'bad/name': {}}}",
               "/tools/bad/name: invalid name \"bad/name\" (1 to 128 letters, digits "
               "and . _ : @ -, not starting with . : @ -)");
    load_fails(P0 "'tools': {'t': {'pins': {'read': 'abc'}}}}",
               "/tools/t/pins/read: expected a SHA-256 in hex (64 characters)");
    load_fails(P0 "'tools': {'t': {'allow_secrets': ['aws_access_key', 'mine']}}}",
               "/tools/t/allow_secrets/1: undefined secret pattern \"mine\"");
    load_fails(P0 "'tools': {'t': {'strip': {'headers': 'x'}}}}",
               "/tools/t/strip/headers: expected an array of strings");
}


static void
invalid_credentials(void **state)
{
    (void) state;
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'oauth'}}}}",
               "/tools/t/credential/type: expected one of jwt, secret");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'jwt'}}}}",
               "/tools/t/credential/audience: expected a non-empty string");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'jwt', 'audience': 'a', "
               "'ttl': '301s'}}}}", "/tools/t/credential/ttl: at most 300s");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'jwt', 'audience': 'a', "
               "'ttl': '1'}}}}", "/tools/t/credential/ttl: expected a duration like "
               "\"90s\", \"10m\", \"1h\" or \"2d\"");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'jwt', 'audience': 'a', "
               "'format': 'Bearer {secret}'}}}}",
               "/tools/t/credential/format: must contain {token}");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'jwt', 'audience': 'a', "
               "'secret': 's'}}}}",
               "/tools/t/credential/secret: unknown key for a jwt credential");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'secret'}}}}",
               "/tools/t/credential/secret: expected a non-empty string");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'secret', 'secret': 's', "
               "'format': '{token}'}}}}",
               "/tools/t/credential/format: must contain {secret}");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'secret', 'secret': 's', "
               "'format': '{secret}\\r\\nX: y'}}}}",
               "/tools/t/credential/format: control characters are not allowed");
    load_fails(P0 "'tools': {'t': {'credential': {'type': 'secret', 'secret': 's', "
               "'header': 'Bad:Header'}}}}",
               "/tools/t/credential/header: invalid header name");
}


static void
invalid_identities(void **state)
{
    (void) state;
    load_fails(P0 "'agents': {'a': {'spiffe': 'spiffe://x/a'}}}",
               "/agents/a/owner: required");
    load_fails(P0 "'agents': {'a': {'owner': 'o'}}}",
               "/agents/a: expected exactly one of spiffe, jwt");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'spiffe': 'spiffe://x/a', "
               "'jwt': {'sub': 'a'}}}}",
               "/agents/a: expected exactly one of spiffe, jwt");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'spiffe': 'https://x/a'}}}",
               "/agents/a/spiffe: expected a spiffe:// ID");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'jwt': {}}}}",
               "/agents/a/jwt: expected an object of claims");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'jwt': {'sub': 1}}}}",
               "/agents/a/jwt/sub: expected a string");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'spiffe': 'spiffe://x/a', "
               "'max_tasks': 0}}}", "/agents/a/max_tasks: expected an integer from "
               "1 to 1000000");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'spiffe': 'spiffe://x/a', "
               "'role': 'x'}}}", "/agents/a/role: unknown key");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'spiffe': 'spiffe://x/a'}, "
               "'b': {'owner': 'o', 'spiffe': 'spiffe://x/a'}}}",
               "/agents/b/spiffe: same identity as agent \"a\"");
    load_fails(P0 "'agents': {'a': {'owner': 'o', 'jwt': {'sub': 'a', 'iss': 'i'}}, "
               "'b': {'owner': 'o', 'jwt': {'iss': 'i', 'sub': 'a'}}}}",
               "/agents/b/jwt: same identity as agent \"a\"");
    load_fails(P0 "'groups': {'g': []}}", "/groups/g: expected a non-empty array of "
               "{\"spiffe\": ...} or {\"jwt\": {...}}");
    load_fails(P0 "'groups': {'g': [{'spiffe': 'spiffe://x/*', 'x': 1}]}}",
               "/groups/g/0/x: unknown key");
    load_fails(P0 "'groups': {'g': [{'jwt': {'groups': ['a']}}]}}",
               "/groups/g/0/jwt/groups: expected a string");
}


static void
invalid_intents(void **state)
{
    (void) state;
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': []}}}",
               "/intents/i/max_ttl: required");
    load_fails(P0 "'intents': {'i': {'tools': [], 'max_ttl': '1m'}}}",
               "/intents/i/agents: required");
    load_fails(P0 "'intents': {'i': {'agents': ['bot'], 'tools': [], "
               "'max_ttl': '1m'}}}", "/intents/i/agents/0: undefined agent \"bot\"");
    load_fails(P0 "'tools': {'t': {}}, 'intents': {'i': {'agents': [], "
               "'tools': ['t', 'u'], 'max_ttl': '1m'}}}",
               "/intents/i/tools/1: undefined tool \"u\"");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'max_lifetime': '30s'}}}",
               "/intents/i/max_lifetime: shorter than max_ttl");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'max_depth': -1}}}",
               "/intents/i/max_depth: expected an integer from 0 to 64");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'rate': '20/d'}}}}", "/intents/i/budget/rate: expected a "
               "rate like \"20/s\", \"100/m\" or \"1000/h\"");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'rate': '0/s'}}}}", "/intents/i/budget/rate: expected a "
               "rate like \"20/s\", \"100/m\" or \"1000/h\"");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'rate': '20/ss'}}}}", "/intents/i/budget/rate: expected "
               "a rate like \"20/s\", \"100/m\" or \"1000/h\"");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'rate': '20/'}}}}", "/intents/i/budget/rate: expected "
               "a rate like \"20/s\", \"100/m\" or \"1000/h\"");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'rate': 20}}}}", "/intents/i/budget/rate: expected "
               "a rate like \"20/s\", \"100/m\" or \"1000/h\"");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {}}}}", "/intents/i/budget: expected calls, rate or both");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'calls': 0}}}}", "/intents/i/budget/calls: expected an "
               "integer from 1 to 1000000000000");
    load_fails(P0 "'intents': {'i': {'agents': [], 'tools': [], 'max_ttl': '1m', "
               "'budget': {'cost': 1}}}}", "/intents/i/budget/cost: unknown key");
}


static void
intent_defaults(void **state)
{
    ag_policy_t        *p;
    const ag_intent_t  *in;

    (void) state;
    p = load(P0 "'tools': {'t': {}}, 'intents': {"
             "'a': {'agents': [], 'tools': ['t'], 'max_ttl': '2h', "
             "      'max_lifetime': '1d', 'max_depth': 0, 'budget': {'rate': '100/m'}},"
             "'b': {'agents': [], 'tools': [], 'max_ttl': '10m', "
             "      'budget': {'rate': '1000/h'}}}}");
    in = ag_policy_intent(p, "a", 1);
    assert_int_equal(in->max_ttl, 7200);
    assert_int_equal(in->max_lifetime, 86400);
    assert_int_equal(in->max_depth, 0);
    assert_int_equal(in->budget_calls, 0);
    assert_int_equal(in->budget_rate_n, 100);
    assert_int_equal(in->budget_rate_per, 60);
    in = ag_policy_intent(p, "b", 1);
    assert_int_equal(in->max_lifetime, 2400);
    assert_int_equal(in->max_depth, 3);
    assert_int_equal(in->budget_rate_n, 1000);
    assert_int_equal(in->budget_rate_per, 3600);
    ag_policy_free(p);
}


static void
invalid_secret_patterns(void **state)
{
    (void) state;
    load_fails(P0 "'secret_patterns': {'mine': 'ab(c'}}",
               "/secret_patterns/mine: invalid regex: missing closing parenthesis "
               "at offset 4");
    load_fails(P0 "'secret_patterns': {'jwt': 'x'}}",
               "/secret_patterns/jwt: \"jwt\" is a built-in pattern");
    load_fails(P0 "'secret_patterns': {'mine': ''}}",
               "/secret_patterns/mine: expected a non-empty string");
}


/* --- the SPEC's example, whole ------------------------------------------------------------ */

static const char *spec_policy =
    "{"
    "  'agentgov': 1,"
    "  'agents':    { 'support-bot': { 'spiffe': 'spiffe://example.org/agent/support-bot', 'owner': 'team-support' },"
    "                 'deploy-bot':  { 'jwt': { 'iss': 'https://idp.example.org', 'sub': 'deploy-bot' }, 'owner': 'team-platform' } },"
    "  'groups':    { 'finance-oncall': [ { 'jwt': { 'iss': 'https://idp.example.org', 'groups': 'finance' } } ],"
    "                 'secops':         [ { 'spiffe': 'spiffe://example.org/human/*' } ] },"
    "  'admins': ['secops'], 'auditors': ['secops', 'finance-oncall'],"
    "  'tools': {"
    "    'tickets':  { 'hosts': ['tickets.internal'], 'upstream': 'https://tickets.internal', 'credential': { 'type': 'jwt', 'audience': 'tickets-api', 'ttl': '60s' } },"
    "    'payments': { 'credential': { 'type': 'secret', 'secret': 'payments_key', 'header': 'Authorization', 'format': 'Bearer {secret}' } },"
    "    'files':    { 'protocol': 'mcp', 'credential': { 'type': 'jwt', 'audience': 'files-mcp', 'ttl': '60s' } }"
    "  },"
    "  'intents': {"
    "    'triage-ticket': { 'agents': ['support-bot'], 'tools': ['tickets', 'payments', 'files'], 'max_ttl': '15m',"
    "                       'budget': { 'calls': 200, 'rate': '20/s' } }"
    "  },"
    "  'rules': ["
    "    { 'id': 'no-bulk-export', 'effect': 'deny', 'tool': 'tickets', 'method': 'GET', 'path': '/v1/export/**',"
    "      'reason': 'bulk export is never part of a task' },"
    "    { 'id': 'large-refund', 'effect': 'hold', 'tool': 'payments', 'method': 'POST', 'path': '/v1/refunds',"
    "      'when': { 'body:/amount': { 'gt': 5000 } }, 'approvers': ['finance-oncall'], 'timeout': '10m' },"
    "    { 'id': 'files-read', 'effect': 'allow', 'tool': 'files', 'mcp': { 'tool': ['read_file', 'list_dir'] },"
    "      'when': { 'args:/path': { 'glob': '/srv/tickets/**' } } },"
    "    { 'id': 'triage', 'effect': 'allow', 'intent': 'triage-ticket', 'tool': ['tickets', 'payments'] }"
    "  ],"
    "  'default': 'deny'"
    "}";


static void
spec_example(void **state)
{
    ag_policy_t        *p;
    ag_decision_t       d;
    const ag_tool_t    *t;
    const ag_intent_t  *in;
    const ag_agent_t   *a;

    (void) state;
    p = load(spec_policy);

    assert_int_equal(decide(p, "{'agent': 'support-bot', 'intent': 'triage-ticket',"
                            "'tool': 'tickets', 'method': 'GET', "
                            "'path': '/v1/export/all'}", &d), AG_DENY);
    assert_string_equal(d.reason, "bulk export is never part of a task");
    assert_int_equal(decide(p, "{'agent': 'support-bot', 'intent': 'triage-ticket',"
                            "'tool': 'tickets', 'method': 'GET', "
                            "'path': '/v1/tickets/7'}", &d), AG_ALLOW);
    assert_string_equal(d.rule->id, "triage");
    assert_int_equal(decide(p, "{'intent': 'triage-ticket', 'tool': 'payments', "
                            "'method': 'POST', 'path': '/v1/refunds', "
                            "'body': {'amount': 9000}}", &d), AG_HOLD);
    assert_int_equal(d.holds[0]->timeout, 600);
    assert_int_equal(decide(p, "{'intent': 'triage-ticket', 'tool': 'payments', "
                            "'method': 'POST', 'path': '/v1/refunds', "
                            "'body': {'amount': 90}}", &d), AG_ALLOW);
    assert_int_equal(decide(p, "{'tool': 'files', 'method': 'POST', 'mcp': "
                            "{'method': 'tools/call', 'tool': 'read_file', "
                            "'arguments': {'path': '/srv/tickets/a/b'}}}", &d),
                     AG_ALLOW);
    assert_int_equal(decide(p, "{'tool': 'files', 'method': 'POST', 'mcp': "
                            "{'method': 'tools/call', 'tool': 'read_file', "
                            "'arguments': {'path': '/srv/tickets/../../etc/x'}}}",
                            &d), AG_DENY);
    assert_int_equal(decide(p, "{'tool': 'files', 'method': 'POST', 'mcp': "
                            "{'method': 'tools/call', 'tool': 'write_file', "
                            "'arguments': {'path': '/srv/tickets/a'}}}", &d),
                     AG_DENY);

    t = ag_policy_tool(p, "tickets", 7);
    assert_non_null(t);
    assert_string_equal(t->upstream, "https://tickets.internal");
    assert_int_equal(t->cred_type, AG_CRED_JWT);
    assert_string_equal(t->cred_audience, "tickets-api");
    assert_int_equal(t->cred_ttl, 60);
    assert_string_equal(t->cred_header, "Authorization");
    assert_string_equal(t->cred_format, "Bearer {token}");
    assert_false(t->mcp);
    assert_false(t->reads_body);
    t = ag_policy_tool(p, "payments", 8);
    assert_int_equal(t->cred_type, AG_CRED_SECRET);
    assert_string_equal(t->cred_secret, "payments_key");
    assert_string_equal(t->cred_format, "Bearer {secret}");
    assert_true(t->reads_body);
    t = ag_policy_tool(p, "files", 5);
    assert_true(t->mcp);
    assert_true(t->reads_body);
    assert_null(ag_policy_tool(p, "file", 4));
    assert_null(ag_policy_tool(p, "filesx", 6));

    in = ag_policy_intent(p, "triage-ticket", 13);
    assert_non_null(in);
    assert_int_equal(in->max_ttl, 900);
    assert_int_equal(in->max_lifetime, 3600);
    assert_int_equal(in->max_depth, 3);
    assert_int_equal(in->budget_calls, 200);
    assert_int_equal(in->budget_rate_n, 20);
    assert_int_equal(in->budget_rate_per, 1);
    assert_int_equal(in->ntools, 3);
    assert_string_equal(in->agents[0], "support-bot");

    a = ag_policy_agent_by_name(p, "deploy-bot", 10);
    assert_non_null(a);
    assert_string_equal(a->owner, "team-platform");
    assert_int_equal(a->max_tasks, 100);
    assert_int_equal(a->max_pending, 20);
    ag_policy_free(p);
}


/* --- identities ------------------------------------------------------------------------- */

static const ag_agent_t *
agent_of(ag_policy_t *p, const char *spiffe, const char *claims)
{
    ag_identity_t      id;
    const ag_agent_t  *a;
    char              *c = claims ? q(claims) : NULL;

    memset(&id, 0, sizeof(id));
    if (spiffe != NULL) {
        id.spiffe.p = spiffe;
        id.spiffe.len = strlen(spiffe);
    }
    id.claims = c ? json_loads(c, 0, NULL) : NULL;
    free(c);
    a = ag_policy_agent(p, &id);
    json_decref(id.claims);
    return a;
}


static int
group_of(ag_policy_t *p, const char *spiffe, const char *claims,
    const char *group, int which)
{
    ag_identity_t  id;
    int            r;
    char          *c = claims ? q(claims) : NULL;

    memset(&id, 0, sizeof(id));
    if (spiffe != NULL) {
        id.spiffe.p = spiffe;
        id.spiffe.len = strlen(spiffe);
    }
    id.claims = c ? json_loads(c, 0, NULL) : NULL;
    free(c);
    r = which == 0 ? ag_policy_in_group(p, &id, group)
        : which == 1 ? ag_policy_is_admin(p, &id) : ag_policy_is_auditor(p, &id);
    json_decref(id.claims);
    return r;
}


static void
identity_agents(void **state)
{
    ag_policy_t       *p;
    const ag_agent_t  *a;

    (void) state;
    p = load(spec_policy);
    a = agent_of(p, "spiffe://example.org/agent/support-bot", NULL);
    assert_non_null(a);
    assert_string_equal(a->name, "support-bot");
    assert_string_equal(a->owner, "team-support");
    assert_null(agent_of(p, "spiffe://example.org/agent/support-bot2", NULL));
    assert_null(agent_of(p, "spiffe://example.org/agent/support-bo", NULL));

    a = agent_of(p, NULL, "{'iss': 'https://idp.example.org', 'sub': 'deploy-bot', "
                 "'aud': 'agentgov'}");
    assert_non_null(a);
    assert_string_equal(a->name, "deploy-bot");
    assert_null(agent_of(p, NULL, "{'iss': 'https://evil.example', "
                         "'sub': 'deploy-bot'}"));
    assert_null(agent_of(p, NULL, "{'sub': 'deploy-bot'}"));
    assert_null(agent_of(p, NULL, "{'iss': 'https://idp.example.org', 'sub': 7}"));
    assert_null(agent_of(p, NULL, NULL));
    ag_policy_free(p);
}


static void
identity_ambiguous(void **state)
{
    ag_policy_t  *p;

    (void) state;
    p = load("{'agentgov': 1, 'agents': {"
             "'one': {'spiffe': 'spiffe://x/bots/one', 'owner': 'o'},"
             "'any': {'spiffe': 'spiffe://x/bots/*', 'owner': 'o'},"
             "'j1': {'jwt': {'sub': 'k'}, 'owner': 'o'},"
             "'j2': {'jwt': {'team': 'blue'}, 'owner': 'o'}}}");
    /* an exact ID that a glob also matches: refused, never guessed */
    assert_null(agent_of(p, "spiffe://x/bots/one", NULL));
    assert_string_equal(agent_of(p, "spiffe://x/bots/two", NULL)->name, "any");
    assert_string_equal(agent_of(p, NULL, "{'sub': 'k'}")->name, "j1");
    assert_string_equal(agent_of(p, NULL, "{'team': ['red', 'blue']}")->name, "j2");
    assert_null(agent_of(p, NULL, "{'sub': 'k', 'team': 'blue'}"));
    ag_policy_free(p);
}


static void
identity_groups(void **state)
{
    ag_policy_t  *p;

    (void) state;
    p = load(spec_policy);
    assert_true(group_of(p, "spiffe://example.org/human/ann", NULL, "secops", 0));
    assert_false(group_of(p, "spiffe://example.org/human/ann/x", NULL, "secops", 0));
    assert_false(group_of(p, "spiffe://example.org/human/ann", NULL, "finance-oncall",
                          0));
    assert_false(group_of(p, "spiffe://example.org/human/ann", NULL, "nope", 0));
    assert_true(group_of(p, NULL, "{'iss': 'https://idp.example.org', 'sub': 'bob',"
                         " 'groups': ['eng', 'finance']}", "finance-oncall", 0));
    assert_true(group_of(p, NULL, "{'iss': 'https://idp.example.org', "
                         "'groups': 'finance'}", "finance-oncall", 0));
    assert_false(group_of(p, NULL, "{'iss': 'https://idp.example.org', "
                          "'groups': ['eng']}", "finance-oncall", 0));

    /* admins and auditors by group */
    assert_true(group_of(p, "spiffe://example.org/human/ann", NULL, NULL, 1));
    assert_true(group_of(p, "spiffe://example.org/human/ann", NULL, NULL, 2));
    assert_false(group_of(p, NULL, "{'iss': 'https://idp.example.org', "
                          "'groups': 'finance'}", NULL, 1));
    assert_true(group_of(p, NULL, "{'iss': 'https://idp.example.org', "
                         "'groups': 'finance'}", NULL, 2));

    /* an agent is never a person, even when its claims fit a group */
    assert_false(group_of(p, NULL, "{'iss': 'https://idp.example.org', "
                          "'sub': 'deploy-bot', 'groups': 'finance'}",
                          "finance-oncall", 0));
    assert_false(group_of(p, NULL, "{'iss': 'https://idp.example.org', "
                          "'sub': 'deploy-bot', 'groups': 'finance'}", NULL, 2));
    ag_policy_free(p);
}


/* --- hosts, body reading, accessors --------------------------------------------------------- */

static void
host_mapping(void **state)
{
    ag_policy_t      *p;
    const ag_tool_t  *t;

    (void) state;
    p = load("{'agentgov': 1, 'tools': {"
             "'a': {'hosts': ['api.example.org', '*.example.org']},"
             "'b': {'hosts': ['*.eu.example.org', 'Other.Host']},"
             "'c': {}}}");
#define TBH(h)  ag_policy_tool_by_host(p, h, strlen(h))
    assert_string_equal(TBH("api.example.org")->name, "a");
    assert_string_equal(TBH("API.Example.ORG")->name, "a");
    assert_string_equal(TBH("x.example.org")->name, "a");
    assert_string_equal(TBH("x.y.example.org")->name, "a");
    /* the most specific wildcard wins */
    assert_string_equal(TBH("x.eu.example.org")->name, "b");
    assert_string_equal(TBH("a.b.eu.example.org")->name, "b");
    assert_string_equal(TBH("eu.example.org")->name, "a");
    assert_string_equal(TBH("other.host")->name, "b");
    assert_null(TBH("example.org"));
    assert_null(TBH("xexample.org"));
    assert_null(TBH("other.host.evil"));
    assert_null(TBH(""));
#undef TBH
    t = ag_policy_tool(p, "b", 1);
    assert_int_equal(t->nhosts, 2);
    assert_string_equal(t->hosts[1], "other.host");
    ag_policy_free(p);
}


static void
reads_body(void **state)
{
    ag_policy_t  *p;

    (void) state;
    p = load("{'agentgov': 1, 'tools': {'a': {}, 'b': {}, 'c': {}, 'm': {}}, "
             "'rules': ["
             "{'id': 'r1', 'effect': 'deny', 'tool': 'a', "
             " 'when': {'not': {'any': [{'header:x': {'eq': '1'}}, "
             "                          {'body:/x': {'eq': 1}}]}}},"
             "{'id': 'r2', 'effect': 'allow', 'tool': 'b', "
             " 'when': {'header:x': {'eq': '1'}}},"
             "{'id': 'r3', 'effect': 'allow', 'tool': 'm', 'mode': 'monitor', "
             " 'when': {'args:/p': {'exists': true}}}]}");
    assert_true(ag_policy_tool(p, "a", 1)->reads_body);
    assert_false(ag_policy_tool(p, "b", 1)->reads_body);
    assert_false(ag_policy_tool(p, "c", 1)->reads_body);
    assert_true(ag_policy_tool(p, "m", 1)->reads_body);
    ag_policy_free(p);

    /* a rule for every tool reads the body of every tool */
    p = load("{'agentgov': 1, 'tools': {'a': {}, 'b': {}}, 'rules': ["
             "{'id': 'r', 'effect': 'deny', 'when': {'body:': {'exists': true}}}]}");
    assert_true(ag_policy_tool(p, "a", 1)->reads_body);
    assert_true(ag_policy_tool(p, "b", 1)->reads_body);
    ag_policy_free(p);
}


static void
tool_extras(void **state)
{
    ag_policy_t        *p;
    const ag_tool_t    *t;
    const char *const  *names, *const *res;

    (void) state;
    p = load("{'agentgov': 1, "
             "'strip': {'headers': ['X-Internal-Key'], 'query': ['sig']}, "
             "'secret_patterns': {'acme': 'acme_[a-z0-9]{32}'}, "
             "'tools': {'t': {'protocol': 'mcp', "
             " 'strip': {'headers': ['X-T'], 'query': ['k1', 'k2']}, "
             " 'allow_secrets': ['jwt', 'acme'], "
             " 'pins': {'read_file': '0123456789ABCDEF0123456789abcdef"
             "0123456789abcdef0123456789abcdef'}, "
             " 'credential': {'type': 'jwt', 'audience': 'x', 'ttl': '5m', "
             "   'header': 'X-Token', 'format': 'Token {token}'}}}}");
    t = ag_policy_tool(p, "t", 1);
    assert_int_equal(t->nstrip_headers, 1);
    assert_string_equal(t->strip_headers[0], "X-T");
    assert_int_equal(t->nstrip_query, 2);
    assert_string_equal(t->strip_query[1], "k2");
    assert_int_equal(t->nallow_secrets, 2);
    assert_string_equal(t->allow_secrets[1], "acme");
    assert_int_equal(t->npins, 1);
    assert_string_equal(t->pin_names[0], "read_file");
    assert_string_equal(t->pin_sha256[0], "0123456789abcdef0123456789abcdef"
                        "0123456789abcdef0123456789abcdef");
    assert_int_equal(t->cred_ttl, 300);
    assert_string_equal(t->cred_header, "X-Token");
    assert_string_equal(t->cred_format, "Token {token}");
    assert_null(t->upstream);
    assert_int_equal(t->nhosts, 0);

    assert_int_equal(ag_policy_strip_headers(p, &names), 1);
    assert_string_equal(names[0], "X-Internal-Key");
    assert_int_equal(ag_policy_strip_query(p, &names), 1);
    assert_string_equal(names[0], "sig");
    assert_int_equal(ag_policy_secret_patterns(p, &names, &res), 1);
    assert_string_equal(names[0], "acme");
    assert_string_equal(res[0], "acme_[a-z0-9]{32}");
    ag_policy_free(p);

    p = load("{'agentgov': 1}");
    assert_int_equal(ag_policy_strip_headers(p, &names), 0);
    assert_int_equal(ag_policy_secret_patterns(p, &names, &res), 0);
    assert_null(ag_policy_tool(p, "t", 1));
    assert_null(ag_policy_tool_by_host(p, "a", 1));
    assert_null(ag_policy_intent(p, "i", 1));
    assert_null(ag_policy_agent_by_name(p, "a", 1));
    assert_null(ag_policy_rule(p, "a", 1));
    assert_int_equal(decide(p, "{'tool': 't', 'method': 'GET'}", NULL), AG_DENY);
    ag_policy_free(p);
}


static void
sha256_and_files(void **state)
{
    const char    *text = "{\"agentgov\": 1}\n";
    char           err[256], path[] = "/tmp/ag_policy_testXXXXXX";
    ag_policy_t   *p, *f;
    FILE          *fp;
    int            fd;

    (void) state;
    p = ag_policy_load(text, strlen(text), err, sizeof(err));
    assert_non_null(p);
    /* sha256 of the exact bytes, as `printf '{"agentgov": 1}\n' | sha256sum` */
    assert_string_equal(ag_policy_sha256(p), "4ae7949f071ad7126cec906bdd9c2462"
                        "00b86298cc0f8b402c938993425e2cb6");
    ag_policy_free(p);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    f = ag_policy_load_file(path, err, sizeof(err));
    assert_non_null(f);
    p = ag_policy_load(text, strlen(text), err, sizeof(err));
    assert_string_equal(ag_policy_sha256(f), ag_policy_sha256(p));
    ag_policy_free(f);
    ag_policy_free(p);
    unlink(path);

    assert_null(ag_policy_load_file("/nonexistent/policy.json", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open \"/nonexistent/policy.json\""));
}


/* --- lint ------------------------------------------------------------------------------ */

typedef struct {
    char    all[4096];
    int     n;
} warns_t;


static void
warned(void *data, const char *msg)
{
    warns_t  *w = data;
    size_t    len = strlen(w->all);

    snprintf(w->all + len, sizeof(w->all) - len, "%s\n", msg);
    w->n++;
}


static void
lint_findings(void **state)
{
    ag_policy_t  *p;
    warns_t       w;
    int           n;

    (void) state;
    p = load("{'agentgov': 1, 'tools': {'t': {}, 'u': {}, 'm': {'protocol': 'mcp'}}, "
             "'agents': {'bot': {'spiffe': 'spiffe://x/bot', 'owner': 'o'}}, "
             "'intents': {'i': {'agents': ['bot'], 'tools': ['t', 'u', 'm'], "
             "  'max_ttl': '1m'}}, "
             "'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, 'rules': ["
             "{'id': 'no-admin', 'effect': 'deny', 'tool': 't', 'path': '/admin/**'},"
             "{'id': 'admin-get', 'effect': 'allow', 'tool': 't', 'method': 'GET', "
             " 'path': ['/admin/users', '/admin/**']},"
             "{'id': 'ok', 'effect': 'allow', 'tool': 't', 'method': 'GET'},"
             "{'id': 'ok2', 'effect': 'allow', 'tool': 't', 'method': 'GET', "
             " 'reason': 'same as ok'},"
             "{'id': 'purge', 'effect': 'allow', 'tool': 't', 'method': 'PURGE'},"
             "{'id': 'held', 'effect': 'hold', 'tool': 'u', 'approvers': ['g']},"
             "{'id': 'under-hold', 'effect': 'allow', 'tool': 'u', 'method': 'GET'},"
             "{'id': 'mcp-on-http', 'effect': 'deny', 'tool': 't', "
             " 'mcp': {'tool': 'x'}},"
             "{'id': 'watch', 'effect': 'allow', 'mode': 'monitor', 'tool': 'm'},"
             "{'id': 'cond', 'effect': 'allow', 'tool': 't', 'path': '/admin/x', "
             " 'when': {'depth': {'eq': 0}}}]}");
    memset(&w, 0, sizeof(w));
    n = ag_policy_lint(p, warned, &w);
    assert_int_equal(n, w.n);
    assert_non_null(strstr(w.all, "rule purge: PURGE is not a standard HTTP method\n"));
    assert_non_null(strstr(w.all, "rule mcp-on-http: never matches: mcp conditions "
                                  "on tools that are not \"protocol\": \"mcp\"\n"));
    assert_non_null(strstr(w.all, "rule watch: a monitor-mode allow rule is never "
                                  "reported (only would-be deny and hold are)\n"));
    assert_non_null(strstr(w.all, "rule admin-get: never decides, shadowed by deny "
                                  "rule no-admin\n"));
    assert_non_null(strstr(w.all, "rule cond: never decides, shadowed by deny rule "
                                  "no-admin\n"));
    assert_non_null(strstr(w.all, "rule under-hold: never decides, shadowed by hold "
                                  "rule held\n"));
    assert_non_null(strstr(w.all, "rule ok2: duplicates rule ok\n"));
    assert_non_null(strstr(w.all, "intent i: no allow rule reaches tool m\n"));
    assert_null(strstr(w.all, "reaches tool t"));
    assert_null(strstr(w.all, "rule ok: never"));
    assert_int_equal(w.n, 8);
    ag_policy_free(p);

    p = load(spec_policy);
    memset(&w, 0, sizeof(w));
    if (ag_policy_lint(p, warned, &w) != 0) {
        fail_msg("lint of the SPEC example: %s", w.all);
    }
    ag_policy_free(p);
}


/* --- calls from JSON --------------------------------------------------------------------- */

static void
call_from_json(void **state)
{
    tcall_t  tc;

    (void) state;
    mkcall(&tc, "{'agent': 'a', 'owner': 'o', 'task': 't1', 'intent': 'i', "
           "'tool': 'x', 'method': 'POST', 'host': 'h.example', 'path': '/p', "
           "'headers': {'X-A': '1', 'X-B': ['2', '3']}, "
           "'query': {'q': 'a b&c', 'n': 5, 'm': ['x', 'y']}, "
           "'body': {'k': 1}, 'chain': 'r>a', 'depth': 1, "
           "'mcp': {'method': 'tools/call', 'tool': 'read', 'resource': 'file:///x', "
           "        'prompt': 'p', 'arguments': {'path': '/x'}}, "
           "'time': '2026-11-23T10:00:00Z'}");
    assert_int_equal(tc.c.now, 1795428000);
    assert_int_equal(tc.c.nheaders, 3);
    assert_memory_equal(tc.c.headers[2].value.p, "3", 1);
    assert_int_equal(tc.c.query.len, strlen("q=a%20b%26c&n=5&m=x&m=y"));
    assert_memory_equal(tc.c.query.p, "q=a%20b%26c&n=5&m=x&m=y", tc.c.query.len);
    assert_int_equal(tc.c.depth, 1);
    assert_memory_equal(tc.c.mcp_tool.p, "read", 4);
    assert_string_equal(json_string_value(json_object_get(tc.c.mcp_args, "path")),
                        "/x");
    assert_non_null(json_object_get(tc.c.body, "k"));
    assert_memory_equal(tc.c.chain.p, "r>a", 3);
    json_decref(tc.obj);

    mkcall(&tc, "{'time': '2024-02-29T23:59:60.5-01:30', 'body': null}");
    assert_int_equal(tc.c.now, 1709251199 + 5400);     /* 60 s read as 59 */
    assert_null(tc.c.body);
    json_decref(tc.obj);

    mkcall(&tc, "{}");
    assert_true(tc.c.now > 1700000000);
    json_decref(tc.obj);

    /* the longest name and value, every byte encoded */
    {
        char    big[1200 * 2 + 64], *exp;
        size_t  i, n;

        n = (size_t) snprintf(big, sizeof(big), "{'query': {'");
        for (i = 0; i < 1024; i++) {
            big[n++] = '&';
        }
        n += (size_t) snprintf(big + n, sizeof(big) - n, "': '");
        for (i = 0; i < 1024; i++) {
            big[n++] = ' ';
        }
        snprintf(big + n, sizeof(big) - n, "'}}");
        mkcall(&tc, big);
        assert_int_equal(tc.c.query.len, 3 * 1024 * 2 + 1);
        exp = malloc(tc.c.query.len);
        assert_non_null(exp);
        for (i = 0; i < 1024; i++) {
            memcpy(exp + 3 * i, "%26", 3);
            memcpy(exp + 3 * 1024 + 1 + 3 * i, "%20", 3);
        }
        exp[3 * 1024] = '=';
        assert_memory_equal(tc.c.query.p, exp, tc.c.query.len);
        free(exp);
        json_decref(tc.obj);
    }
}


static void
call_from_json_errors(void **state)
{
    static const char *bad[][2] = {
        { "{'method': 'get'}", "/method: expected an HTTP method in upper case" },
        { "{'host': 'A.b'}", "/host: expected lower case, without port" },
        { "{'verb': 'GET'}", "/verb: unknown key" },
        { "{'depth': -1}", "/depth: expected an integer from 0 to 1000" },
        { "{'time': '2026-02-29T10:00:00Z'}",
          "/time: expected an RFC 3339 time like \"2026-11-23T10:00:00Z\"" },
        { "{'time': '2026-11-23 10:00:00'}",
          "/time: expected an RFC 3339 time like \"2026-11-23T10:00:00Z\"" },
        { "{'headers': {'X': 1}}",
          "/headers/X: expected a string or an array of strings" },
        { "{'query': 5}", "/query: expected a string or an object" },
        { "{'query': {'a': {}}}", "/query/a: expected a string, a number or an "
          "array of them (up to 1024 bytes)" },
        { "{'mcp': {'name': 'x'}}", "/mcp/name: unknown key" },
        { "{'mcp': {'tool': 5}}", "/mcp/tool: expected a string" },
        { "{'path': 5}", "/path: expected a string" },
    };
    size_t       i;
    char         err[256], *t;
    json_t      *obj;
    ag_call_t    c;
    ag_header_t  h[2];

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = q(bad[i][0]);
        obj = json_loads(t, 0, NULL);
        free(t);
        assert_non_null(obj);
        assert_int_equal(ag_call_from_json(obj, &c, h, 2, err, sizeof(err)), -1);
        assert_string_equal(err, bad[i][1]);
        json_decref(obj);
    }

    obj = json_loads("{\"headers\": {\"a\": \"1\", \"b\": [\"2\", \"3\"]}}", 0, NULL);
    assert_int_equal(ag_call_from_json(obj, &c, h, 2, err, sizeof(err)), -1);
    assert_string_equal(err, "/headers: more than 2 headers");
    json_decref(obj);
}


/* --- timing: printed, never asserted ------------------------------------------------------- */

/* --- the path index of large cells ------------------------------------------------------ */

static void
regex_prefixes(void **state)
{
    static const struct {
        const char  *re;
        const char  *prefix;
    } cases[] = {
        { "/v1/tickets/[0-9]+", "/v1/tickets/" },
        { "/v1/tickets/[0-9]+(/[a-z]+)?", "/v1/tickets/" },
        { "\\/v1\\/x\\.json", "/v1/x.json" },
        { "/v1/x.*", "/v1/x" },
        { "/v1/x$", "/v1/x" },
        { "/v1/\\d+", "/v1/" },
        { "/v1/(a|b)", "/v1/" },
        { "/v1/(?:a|b)/c", "/v1/" },
        { "/a[|]b", "/a" },
        { "/a[]|]b", "/a" },
        { "/a[[:alpha:]|]", "/a" },
        { "/a\\|b", "/a|b" },
        /* a quantifier takes the byte before it */
        { "/v1/x?", "/v1/" },
        { "/v1/x*", "/v1/" },
        { "/v1/x+", "/v1/" },
        { "/v1/x{2}", "/v1/" },
        { "/ab\\E*", "/a" },                /* \E is nothing: b* */
        { "/ab\\Q\\E+", "/a" },
        { "/ab(?#c)*", "/a" },
        { "/ab(?i)c", "/a" },
        /* alternation at the top: nothing is needed */
        { "/a|/b", "" },
        { "/a(b)|/c", "" },
        { "/a[(]|/b", "" },
        { "/a\\(|/b", "" },
        { "/a\\c(|/b", "" },
        { "/a(*MARK:x()|/b", "" },
        { "/a\\Q|\\E", "" },                /* unsure: nothing */
        { "(?i)/a", "" },
        { ".*", "" },
        { "[/]a", "" },
        { "/\xc3\xa9t\xc3\xa9", "/" },      /* non-ASCII: stop */
    };
    ag_pool_t   *pool;
    ag_regex_t  *re;
    const char  *s;
    size_t       i, n;
    char         err[256];

    (void) state;
    pool = ag_pool_create();
    assert_non_null(pool);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        re = ag_regex_compile(pool, cases[i].re, strlen(cases[i].re), err,
                              sizeof(err));
        if (re == NULL) {
            fail_msg("%s: %s", cases[i].re, err);
        }
        n = ag_regex_prefix(re, &s);
        if (n != strlen(cases[i].prefix) || memcmp(s, cases[i].prefix, n) != 0) {
            fail_msg("%s: prefix \"%.*s\", wanted \"%s\"", cases[i].re,
                     (int) n, s, cases[i].prefix);
        }
    }
    ag_pool_destroy(pool);
}


/* A policy whose cell (T, GET) holds 40 allow rules that no test path
   matches, and then the given rules: a cell large enough for the path
   index. */
static ag_policy_t *
padded(const char *deflt, const char *rules)
{
    char          *buf, *t;
    size_t         cap, n;
    int            i;
    ag_policy_t   *p;

    cap = 8192 + strlen(rules);
    buf = malloc(cap);
    assert_non_null(buf);
    n = (size_t) snprintf(buf, cap, "{'agentgov': 1, 'default': '%s', "
                          "'tools': {'T': {}}, "
                          "'groups': {'g': [{'spiffe': 'spiffe://x/y'}]}, "
                          "'rules': [", deflt);
    for (i = 0; i < 40; i++) {
        n += (size_t) snprintf(buf + n, cap - n, "{'id': 'f%d', 'effect': "
                               "'allow', 'tool': 'T', 'method': 'GET', "
                               "'path': '/filler/%d/*'}, ", i, i);
    }
    snprintf(buf + n, cap - n, "%s]}", rules);
    t = buf;
    p = load(t);
    free(buf);
    return p;
}


typedef struct {
    size_t  n;
    char    ids[512];
} count_t;


static void
counted(void *data, const ag_rule_t *r, int matched, const char *why)
{
    count_t  *c = data;
    size_t    len = strlen(c->ids);

    (void) why;
    if (r->id[0] != 'f') {
        snprintf(c->ids + len, sizeof(c->ids) - len, "%s%s%s", len ? " " : "",
                 r->id, matched ? "+" : "");
    }
    c->n++;
}


/* "effect rule" for a (T, GET) call on path (len bytes), after checking
   that the index, the index with a trace and every rule agree. */
static const char *
verdict_n(ag_policy_t *p, const char *path, size_t len, count_t *cnt)
{
    static char     out[128];
    ag_call_t       c;
    ag_decision_t   d, u, t;
    count_t         local;
    size_t          i;

    memset(&c, 0, sizeof(c));
    c.tool.p = "T";
    c.tool.len = 1;
    c.method.p = "GET";
    c.method.len = 3;
    c.path.p = path;
    c.path.len = len;

    cnt = cnt ? cnt : &local;
    memset(cnt, 0, sizeof(count_t));
    assert_int_equal(ag_policy_eval(p, &c, &d, NULL, NULL), 0);
    assert_int_equal(ag_policy_eval(p, &c, &t, counted, cnt), 0);
    assert_int_equal(ag_policy_eval_unindexed(p, &c, &u, NULL, NULL), 0);
    assert_int_equal(d.effect, u.effect);
    assert_ptr_equal(d.rule, u.rule);
    assert_int_equal(d.nholds, u.nholds);
    for (i = 0; i < d.nholds; i++) {
        assert_ptr_equal(d.holds[i], u.holds[i]);
    }
    assert_int_equal(d.monitor_effect, u.monitor_effect);
    assert_ptr_equal(d.monitor_rule, u.monitor_rule);
    assert_int_equal(t.effect, d.effect);
    assert_ptr_equal(t.rule, d.rule);

    snprintf(out, sizeof(out), "%s %s", ag_effect_name(d.effect),
             d.rule ? d.rule->id : "-");
    return out;
}

#define verdict(p, path)  verdict_n(p, path, strlen(path), NULL)


static void
path_index_globs(void **state)
{
    ag_policy_t  *p;
    count_t       c;

    (void) state;
    p = padded("deny",
        "{'id': 'x', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/x/**'},"
        "{'id': 'exact', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/a/b'},"
        "{'id': 'star', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/s/b*'},"
        "{'id': 'mid', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/m/**/z'},"
        "{'id': 'two', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': ['/p/**', '/p/q/**', '/r/*']},"
        "{'id': 'tickets', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/v1/tickets/*/comments'},"
        /* one glob without a prefix: for any path (and filed last) */
        "{'id': 'mixed', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': ['/n/**', '/n/o/*', '**/q']}");

    /* "/x/" "**" matches "/x" itself, and never "/xy" */
    assert_string_equal(verdict(p, "/x"), "allow x");
    assert_string_equal(verdict(p, "/x/"), "allow x");
    assert_string_equal(verdict(p, "/x/a/b"), "allow x");
    assert_string_equal(verdict(p, "/xy"), "deny -");
    assert_string_equal(verdict(p, "/"), "deny -");
    /* a path without a wildcard is exact */
    assert_string_equal(verdict(p, "/a/b"), "allow exact");
    assert_string_equal(verdict(p, "/a/b/"), "deny -");
    assert_string_equal(verdict(p, "/a/bc"), "deny -");
    assert_string_equal(verdict(p, "/a"), "deny -");
    assert_string_equal(verdict(p, "/s/b"), "allow star");
    assert_string_equal(verdict(p, "/s/bcd"), "allow star");
    assert_string_equal(verdict(p, "/s/b/c"), "deny -");
    assert_string_equal(verdict(p, "/m/z"), "allow mid");
    assert_string_equal(verdict(p, "/m/1/2/z"), "allow mid");
    assert_string_equal(verdict(p, "/mz"), "deny -");
    assert_string_equal(verdict(p, "/v1/tickets/7/comments"), "allow tickets");
    assert_string_equal(verdict(p, "/v1/tickets/7/8/comments"), "deny -");
    assert_string_equal(verdict(p, "/r/1"), "allow two");
    assert_string_equal(verdict(p, "/p"), "allow two");
    assert_string_equal(verdict(p, ""), "deny -");
    assert_string_equal(verdict(p, "/n/o/p"), "allow mixed");
    assert_string_equal(verdict(p, "/a/b/q"), "allow mixed");

    /* a rule filed under two prefixes of one path is tested once */
    assert_string_equal(verdict_n(p, "/p/q/z", 6, &c), "allow two");
    assert_string_equal(c.ids, "two+ mixed");
    /* only the rules whose prefix starts the path are looked at */
    (void) verdict_n(p, "/x/1", 4, &c);
    assert_string_equal(c.ids, "x+ mixed");
    assert_int_equal(c.n, 2);
    (void) verdict_n(p, "/nothing", 8, &c);
    assert_int_equal(c.n, 1);
    /* nor those that need the path to end, or go on with '/', there */
    (void) verdict_n(p, "/xy", 3, &c);
    assert_string_equal(c.ids, "mixed");
    (void) verdict_n(p, "/a/bc", 5, &c);
    assert_string_equal(c.ids, "mixed");
    (void) verdict_n(p, "/a/b/", 5, &c);
    assert_string_equal(c.ids, "mixed");
    (void) verdict_n(p, "/a/b", 4, &c);
    assert_string_equal(c.ids, "exact+ mixed");
    ag_policy_free(p);

    /* "**" and "*" alone, and a glob starting with '*': for every path */
    p = padded("deny",
        "{'id': 'one', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '*'},"
        "{'id': 'any', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '**', 'when': {'header:X-A': {'exists': true}}},"
        "{'id': 'all', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '**'}");
    assert_string_equal(verdict(p, "abc"), "allow one");
    assert_string_equal(verdict(p, "/abc"), "allow all");
    assert_string_equal(verdict(p, "/filler/1/x"), "allow f1");
    assert_string_equal(verdict(p, ""), "deny -");
    (void) verdict_n(p, "/q", 2, &c);
    assert_string_equal(c.ids, "any all+");     /* "*" cannot match "/q" */
    ag_policy_free(p);
}


static void
path_index_order(void **state)
{
    ag_policy_t  *p;
    count_t       c;

    (void) state;
    /* the first deciding rule in file order, across nodes and rest;
       deny > hold > allow whatever the order; every hold */
    p = padded("deny",
        "{'id': 'a1', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/o/a/**'},"
        "{'id': 'a2', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': '/o/**'},"
        "{'id': 'h1', 'effect': 'hold', 'tool': 'T', 'method': 'GET', "
        " 'path': '/h/*/x', 'approvers': ['g']},"
        "{'id': 'h2', 'effect': 'hold', 'tool': 'T', 'method': 'GET', "
        " 'path': '**/x', 'approvers': ['g']},"
        "{'id': 'h3', 'effect': 'hold', 'tool': 'T', 'method': 'GET', "
        " 'path': '/h/**', 'approvers': ['g']},"
        "{'id': 'm1', 'effect': 'deny', 'mode': 'monitor', 'tool': 'T', "
        " 'method': 'GET', 'path': '/o/a/b'},"
        "{'id': 'd1', 'effect': 'deny', 'tool': 'T', 'method': 'GET', "
        " 'path': '/o/a/c*'},"
        "{'id': 'a3', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': {'regex': '/o/a/[0-9]+'}}");
    assert_string_equal(verdict(p, "/o/a/1"), "allow a1");
    assert_string_equal(verdict(p, "/o/b"), "allow a2");
    assert_string_equal(verdict(p, "/o/a/cc"), "deny d1");
    /* every hold, from two nodes and rest ("**" "/x" has no prefix) */
    assert_string_equal(verdict_n(p, "/h/1/x", 6, &c), "hold h1");
    assert_string_equal(c.ids, "h1+ h2+ h3+");
    assert_string_equal(verdict_n(p, "/h/1/y", 6, &c), "hold h3");
    assert_string_equal(c.ids, "h2 h3+");
    /* a monitor deny stronger than the enforced allow */
    assert_string_equal(verdict_n(p, "/o/a/b", 6, &c), "allow a1");
    assert_string_equal(c.ids, "a1+ a2+ h2 m1+ d1 a3");
    ag_policy_free(p);
}


static void
path_index_regex(void **state)
{
    ag_policy_t  *p;

    (void) state;
    p = padded("allow",
        "{'id': 'r1', 'effect': 'deny', 'tool': 'T', 'method': 'GET', "
        " 'path': {'regex': '/d/[a-z]+'}},"
        "{'id': 'r2', 'effect': 'allow', 'tool': 'T', 'method': 'GET', "
        " 'path': {'regex': '/e/(x|y)'}},"
        "{'id': 'r3', 'effect': 'hold', 'tool': 'T', 'method': 'GET', "
        " 'path': {'regex': '/h|/i'}, 'approvers': ['g']}");
    assert_string_equal(verdict(p, "/d/abc"), "deny r1");
    assert_string_equal(verdict(p, "/d/1"), "allow -");
    assert_string_equal(verdict(p, "/e/x"), "allow r2");
    assert_string_equal(verdict(p, "/i"), "hold r3");
    assert_string_equal(verdict(p, "/z"), "allow -");
    /* not UTF-8: every regex doubts, whatever the path starts with, and
       doubt matches deny (but not allow) */
    assert_string_equal(verdict(p, "/z\xff"), "deny r1");
    assert_string_equal(verdict(p, "/e/x\xff"), "deny r1");
    /* valid UTF-8 beyond ASCII: a plain miss */
    assert_string_equal(verdict(p, "/z\xc3\xa9"), "allow -");
    ag_policy_free(p);
}


static void
path_index_deep(void **state)
{
    char          rules[16384], path[256];
    size_t        n;
    int           i;
    ag_policy_t  *p;
    count_t       c;

    (void) state;
    /* more nested prefixes of one path than the merge takes: the cell is
       then scanned whole, with the same decision */
    n = 0;
    path[0] = '\0';
    for (i = 0; i < 48; i++) {
        strcat(path, "/c");
        n += (size_t) snprintf(rules + n, sizeof(rules) - n, "%s{'id': 'c%d', "
                               "'effect': '%s', 'tool': 'T', 'method': 'GET', "
                               "'path': '%s/**', 'when': "
                               "{'header:X-A': {'eq': '1'}}}",
                               i ? ", " : "", i, i % 2 ? "deny" : "allow",
                               path);
    }
    p = padded("deny", rules);
    assert_string_equal(verdict_n(p, path, strlen(path), &c), "deny c1");
    assert_int_equal(c.n, 40 + 48);
    assert_string_equal(verdict_n(p, "/c/c/c", 6, &c), "deny c1");
    assert_int_equal(c.n, 3);
    ag_policy_free(p);

    /* more nodes reached at one depth than the walk keeps: every mix of
       "c" and "*" in five segments reaches 32 nodes for /c/c/c/c/c */
    n = 0;
    for (i = 0; i < 32; i++) {
        n += (size_t) snprintf(rules + n, sizeof(rules) - n, "%s{'id': 's%d', "
                               "'effect': 'allow', 'tool': 'T', 'method': 'GET', "
                               "'path': '/%s/%s/%s/%s/%s', 'when': "
                               "{'header:X-A': {'eq': '1'}}}, "
                               "{'id': 'd%d', 'effect': 'deny', 'tool': 'T', "
                               "'method': 'GET', 'path': '/%s/%s/%s/%s/%s/x'}",
                               i ? ", " : "", i, i & 1 ? "*" : "c",
                               i & 2 ? "*" : "c", i & 4 ? "*" : "c",
                               i & 8 ? "*" : "c", i & 16 ? "*" : "c", i,
                               i & 1 ? "*" : "c", i & 2 ? "*" : "c",
                               i & 4 ? "*" : "c", i & 8 ? "*" : "c",
                               i & 16 ? "*" : "c");
    }
    p = padded("deny", rules);
    assert_string_equal(verdict_n(p, "/c/c/c/c/c/x", 12, &c), "deny d0");
    assert_int_equal(c.n, 40 + 64);
    assert_string_equal(verdict_n(p, "/c/c/c/c/d/x", 12, &c), "deny d16");
    assert_int_equal(c.n, 16);
    assert_string_equal(verdict_n(p, "/d/d/d/d/d/x", 12, &c), "deny d31");
    assert_string_equal(c.ids, "d31+");
    assert_string_equal(verdict_n(p, "/d/d/d/d/d", 10, &c), "deny -");
    assert_string_equal(c.ids, "s31");
    ag_policy_free(p);
}


/* --- differential: the index against every rule, on random policies -------------- */

static uint64_t  rng_state;

static uint32_t
rnd(uint32_t n)
{
    /* xorshift64*: fixed seed, the same sequence everywhere */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t) ((rng_state * 2685821657736338717ULL) >> 33) % n;
}


static const char *const words[] = {
    "a", "b", "ab", "v1", "x", "tickets", "t", "\xc3\xa9", "1", "c"
};
#define NWORDS  (sizeof(words) / sizeof(words[0]))


static void
rnd_glob(char *out, size_t size)
{
    size_t  n, k, i;

    n = 0;
    if (rnd(40) == 0) {
        snprintf(out, size, "%s", (const char *[]) { "*", "**", "**/x", "*/a",
                                                     "/**", "/" }[rnd(6)]);
        return;
    }
    k = 1 + rnd(4);
    for (i = 0; i < k && n + 32 < size; i++) {
        /* mostly a word first, as in real policies */
        switch (i == 0 && rnd(4) != 0 ? 5 : rnd(12)) {
        case 0:
            n += (size_t) snprintf(out + n, size - n, "/*");
            break;
        case 1:
            n += (size_t) snprintf(out + n, size - n, "/**");
            break;
        case 2:
            n += (size_t) snprintf(out + n, size - n, "/%s*", words[rnd(NWORDS)]);
            break;
        case 3:
            n += (size_t) snprintf(out + n, size - n, "/*%s", words[rnd(NWORDS)]);
            break;
        case 4:
            n += (size_t) snprintf(out + n, size - n, "/%s**", words[rnd(NWORDS)]);
            break;
        default:
            n += (size_t) snprintf(out + n, size - n, "/%s", words[rnd(NWORDS)]);
            break;
        }
    }
    if (rnd(10) == 0) {
        snprintf(out + n, size - n, "/");
    }
}


static void
rnd_regex(char *out, size_t size)
{
    static const char *const tails[] = {
        "", "[0-9]+", "(/[a-z]+)?", "(a|b)", "|/b", "x?", "x*", "\\d", "\\Q|\\E",
        "(?:a|b)/x", ".*", "[|]", "(?i)A", "\\/[a-z]", "b{0}", "\\E*",
        "|", "(/.*)?", "[^/]+", "/(?#c)*"
    };
    size_t  n, k, i;

    n = 0;
    k = rnd(4);
    for (i = 0; i < k; i++) {
        n += (size_t) snprintf(out + n, size - n, "%s%s",
                               rnd(3) ? "/" : "\\/", words[rnd(NWORDS)]);
    }
    snprintf(out + n, size - n, "%s", tails[rnd(sizeof(tails) / sizeof(tails[0]))]);
}


static json_t *
rnd_when(void)
{
    switch (rnd(8)) {
    case 0:
        return json_pack("{s:{s:s}}", "header:X-A", "eq", rnd(2) ? "1" : "2");
    case 1:
        return json_pack("{s:{s:i}}", "body:/n", "gt", (int) rnd(10));
    case 2:
        return json_pack("{s:{s:b}}", "query:q", "exists", (int) rnd(2));
    case 3:
        return json_pack("{s:{s:{s:s}}}", "not", "header:X-A", "eq", "1");
    case 4:
        return json_pack("{s:[{s:{s:s}},{s:{s:i}}]}", "any",
                         "header:X-A", "eq", "2", "body:/n", "lt", 3);
    default:
        return NULL;
    }
}


static json_t *
rnd_rule(size_t i)
{
    json_t  *r, *paths, *w;
    char     id[32], buf[256], err[256];
    size_t   k, np;

    r = json_object();
    snprintf(id, sizeof(id), "r%zu", i);
    json_object_set_new(r, "id", json_string(id));
    /* few enforced denies and holds, more of them in monitor mode */
    k = rnd(40);
    json_object_set_new(r, "effect", json_string(k < 2 || k == 4 ? "deny"
                                                 : k < 4 || k == 5 ? "hold"
                                                 : "allow"));
    if (k == 4 || k == 5 || k == 6) {
        json_object_set_new(r, "mode", json_string("monitor"));
    }
    if (k == 2 || k == 3 || k == 5) {
        json_object_set_new(r, "approvers", json_pack("[s]", "g"));
    }

    k = rnd(40);
    json_object_set_new(r, "tool", k == 0 ? json_pack("[s,s]", "T", "U")
                                   : k == 1 ? json_string("U")
                                   : json_string("T"));
    if (k == 2) {
        json_object_del(r, "tool");
    }
    k = rnd(40);
    json_object_set_new(r, "method", k == 0 ? json_pack("[s,s]", "GET", "POST")
                                     : k == 1 ? json_string("POST")
                                     : json_string("GET"));
    if (k == 2) {
        json_object_del(r, "method");
    }

    k = rnd(20);
    if (k < 1) {
        /* no path */
    } else if (k < 5) {
        do {
            rnd_regex(buf, sizeof(buf));
        } while (ag_regex_check(buf, strlen(buf), err, sizeof(err)) != 0);
        json_object_set_new(r, "path", json_pack("{s:s}", "regex", buf));
    } else if (k < 7) {
        paths = json_array();
        for (np = 2 + rnd(2); np > 0; np--) {
            rnd_glob(buf, sizeof(buf));
            json_array_append_new(paths, json_string(buf));
        }
        json_object_set_new(r, "path", paths);
    } else {
        rnd_glob(buf, sizeof(buf));
        json_object_set_new(r, "path", json_string(buf));
    }

    w = rnd_when();
    if (json_object_get(r, "path") == NULL) {
        /* a rule for any path needs a narrow condition without doubt to
           leave room for the others */
        json_decref(w);
        w = json_pack("{s:{s:b}, s:{s:b}, s:{s:b}}", "header:X-A", "exists", 1,
                      "query:q", "exists", 1, "body:/n", "exists", 1);
    }
    if (w != NULL) {
        json_object_set_new(r, "when", w);
    }
    return r;
}


static void
rnd_path(char *out, size_t size, size_t *len)
{
    size_t  n, k, i;

    n = 0;
    k = rnd(6);
    for (i = 0; i < k && n + 16 < size; i++) {
        n += (size_t) snprintf(out + n, size - n, "/%s", words[rnd(NWORDS)]);
        if (rnd(8) == 0) {
            n += (size_t) snprintf(out + n, size - n, "%s", words[rnd(NWORDS)]);
        }
    }
    switch (rnd(16)) {
    case 0:
        out[n++] = '/';
        break;
    case 1:
        out[n++] = (char) 0xff;     /* not UTF-8 */
        break;
    case 2:
        n = 0;                      /* no path */
        break;
    case 3:
        n += (size_t) snprintf(out + n, size - n, "%s", words[rnd(NWORDS)]);
        break;
    default:
        break;
    }
    out[n] = '\0';
    *len = n;
}


static void
path_index_differential(void **state)
{
    static const char *const tools[] = { "T", "U", "", "V" };
    static const char *const methods[] = { "GET", "GET", "GET", "POST", "" };
    json_t         *pol, *rules, *bodies[4];
    char           *text, err[512], path[128];
    ag_policy_t    *p;
    ag_call_t       c;
    ag_header_t     h;
    ag_decision_t   d, u;
    count_t         ci, cu;
    size_t          i, k, len, seen[AG_DENY + 1], traced_i, traced_u, monitored;
    int             round;

    (void) state;
    bodies[0] = json_pack("{s:i}", "n", 7);
    bodies[1] = json_pack("{s:i}", "n", 1);
    bodies[2] = json_pack("{s:s}", "n", "seven");
    bodies[3] = NULL;

    for (round = 0; round < 2; round++) {
        rng_state = 0x9e3779b97f4a7c15ULL + (uint64_t) round * 3;
        rules = json_array();
        for (i = 0; i < 2000; i++) {
            json_array_append_new(rules, rnd_rule(i));
        }
        pol = json_pack("{s:i, s:s, s:{s:{}, s:{}, s:{}}, s:{s:[{s:s}]}, s:o}",
                        "agentgov", 1, "default", round ? "allow" : "deny",
                        "tools", "T", "U", "V",
                        "groups", "g", "spiffe", "spiffe://x/y",
                        "rules", rules);
        assert_non_null(pol);
        text = json_dumps(pol, JSON_COMPACT);
        json_decref(pol);
        p = ag_policy_load(text, strlen(text), err, sizeof(err));
        free(text);
        if (p == NULL) {
            fail_msg("random policy refused: %s", err);
        }

        memset(seen, 0, sizeof(seen));
        traced_i = traced_u = monitored = 0;
        for (i = 0; i < 5000; i++) {
            memset(&c, 0, sizeof(c));
            c.tool.p = tools[rnd(4) == 0 ? rnd(4) : 0];
            c.tool.len = strlen(c.tool.p);
            c.method.p = methods[rnd(5)];
            c.method.len = strlen(c.method.p);
            rnd_path(path, sizeof(path), &len);
            c.path.p = len ? path : NULL;
            c.path.len = len;
            if ((k = rnd(3)) > 0) {
                h.name.p = "X-A";
                h.name.len = 3;
                h.value.p = k == 1 ? "1" : "2";
                h.value.len = 1;
                c.headers = &h;
                c.nheaders = 1;
            }
            c.query.p = rnd(2) ? "q=1" : "";
            c.query.len = strlen(c.query.p);
            c.body = bodies[rnd(4)];

            assert_int_equal(ag_policy_eval(p, &c, &d, NULL, NULL), 0);
            assert_int_equal(ag_policy_eval_unindexed(p, &c, &u, NULL, NULL), 0);
            if (d.effect != u.effect || d.rule != u.rule
                || d.nholds != u.nholds || d.monitor_effect != u.monitor_effect
                || d.monitor_rule != u.monitor_rule)
            {
                fail_msg("round %d call %zu (tool %s method %s path \"%.*s\"): "
                         "indexed %s %s, every rule %s %s", round, i, c.tool.p,
                         c.method.p, (int) len, path, ag_effect_name(d.effect),
                         d.rule ? d.rule->id : "-", ag_effect_name(u.effect),
                         u.rule ? u.rule->id : "-");
            }
            for (k = 0; k < d.nholds; k++) {
                assert_ptr_equal(d.holds[k], u.holds[k]);
            }
            seen[d.rule == NULL ? 0 : d.effect]++;
            monitored += d.monitor_effect != AG_EFFECT_NONE;

            if (i % 10 == 0) {
                /* a trace gives the same decision, from fewer rules */
                memset(&ci, 0, sizeof(ci));
                memset(&cu, 0, sizeof(cu));
                assert_int_equal(ag_policy_eval(p, &c, &d, counted, &ci), 0);
                assert_int_equal(ag_policy_eval_unindexed(p, &c, &u, counted,
                                                          &cu), 0);
                assert_int_equal(d.effect, u.effect);
                assert_ptr_equal(d.rule, u.rule);
                assert_int_equal(d.nholds, u.nholds);
                assert_ptr_equal(d.monitor_rule, u.monitor_rule);
                traced_i += ci.n;
                traced_u += cu.n;
            }
        }

        /* every outcome occurred often enough to mean something */
        print_message("differential round %d: default %zu, allow %zu, hold %zu, "
                      "deny %zu, monitor %zu; rules looked at with a trace: "
                      "%zu indexed, %zu every rule\n", round, seen[0],
                      seen[AG_ALLOW], seen[AG_HOLD], seen[AG_DENY], monitored,
                      traced_i, traced_u);
        assert_true(seen[0] > 25 && seen[AG_ALLOW] > 25
                    && seen[AG_HOLD] > 25 && seen[AG_DENY] > 25);
        assert_true(monitored > 25);
        assert_true(traced_i * 3 < traced_u);
        ag_policy_free(p);
    }

    for (k = 0; k < 3; k++) {
        json_decref(bodies[k]);
    }
}


static ag_policy_t *
bench_policy(int nrules, int ntools)
{
    static const char *methods[] = { "GET", "POST", "PUT", "DELETE" };
    char          *buf, err[256];
    size_t         n, cap;
    int            i;
    ag_policy_t   *p;

    cap = (size_t) nrules * 256 + (size_t) ntools * 64 + 4096;
    buf = malloc(cap);
    assert_non_null(buf);
    n = (size_t) snprintf(buf, cap, "{\"agentgov\": 1, \"tools\": {");
    for (i = 0; i < ntools; i++) {
        n += (size_t) snprintf(buf + n, cap - n, "%s\"tool%d\": {}", i ? "," : "",
                               i);
    }
    n += (size_t) snprintf(buf + n, cap - n, "}, \"rules\": [");
    for (i = 0; i < nrules; i++) {
        /* mostly allows on paths, some denies, some with body conditions */
        n += (size_t) snprintf(buf + n, cap - n,
            "%s{\"id\": \"r%d\", \"effect\": \"%s\", \"tool\": \"tool%d\", "
            "\"method\": \"%s\", \"path\": \"/v1/res%d/**\"%s}",
            i ? "," : "", i, i % 10 == 0 ? "deny" : "allow", i % ntools,
            methods[(i / ntools) % 4], i,
            i % 5 == 1 ? ", \"when\": {\"body:/amount\": {\"lt\": 5000}}" : "");
    }
    snprintf(buf + n, cap - n, "]}");
    p = ag_policy_load(buf, strlen(buf), err, sizeof(err));
    free(buf);
    if (p == NULL) {
        fail_msg("bench policy: %s", err);
    }
    return p;
}


static double
bench_ns(ag_policy_t *p, const ag_call_t *c, int iters)
{
    struct timespec  a, b;
    ag_decision_t    d;
    int              i;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < iters; i++) {
        ag_policy_eval(p, c, &d, NULL, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / iters;
}


static void
bench_eval(void **state)
{
    static const int  sizes[] = { 10, 100, 1000, 10000 };
    ag_policy_t      *p;
    ag_call_t         c;
    ag_decision_t     d;
    json_t           *body;
    char              tool[32], path[64];
    int               i, ntools, last;

    (void) state;
    body = json_loads("{\"amount\": 100, \"note\": \"refund\"}", 0, NULL);
    for (i = 0; i < 4; i++) {
        /* rules spread across tools: one tool per 10 rules */
        ntools = sizes[i] / 10 > 0 ? sizes[i] / 10 : 1;
        p = bench_policy(sizes[i], ntools);

        /* a call to the tool and method of the policy's last rule, on its path */
        last = sizes[i] - 1;
        memset(&c, 0, sizeof(c));
        snprintf(tool, sizeof(tool), "tool%d", last % ntools);
        snprintf(path, sizeof(path), "/v1/res%d/items/7", last);
        c.tool.p = tool;
        c.tool.len = strlen(tool);
        c.method.p = ((const char *[]) { "GET", "POST", "PUT", "DELETE" })
                     [(last / ntools) % 4];
        c.method.len = strlen(c.method.p);
        c.path.p = path;
        c.path.len = strlen(path);
        c.body = body;
        ag_policy_eval(p, &c, &d, NULL, NULL);
        assert_int_equal(d.effect, AG_ALLOW);

        print_message("bench: %5d rules, %4d tool%s %6.0f ns/eval\n", sizes[i],
                      ntools, ntools > 1 ? "s:" : ": ", bench_ns(p, &c, 200000));
        ag_policy_free(p);

        /* the same number of rules all on one tool (a worst case for the index) */
        p = bench_policy(sizes[i], 1);
        c.tool.p = "tool0";
        c.tool.len = 5;
        c.method.p = ((const char *[]) { "GET", "POST", "PUT", "DELETE" })
                     [last % 4];
        c.method.len = strlen(c.method.p);
        ag_policy_eval(p, &c, &d, NULL, NULL);
        assert_int_equal(d.effect, AG_ALLOW);
        print_message("bench: %5d rules,    1 tool:  %6.0f ns/eval\n", sizes[i],
                      bench_ns(p, &c, sizes[i] >= 10000 ? 2000 : 20000));
        ag_policy_free(p);
    }
    json_decref(body);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(op_eq),
        cmocka_unit_test(op_eq_http_strings),
        cmocka_unit_test(op_ne),
        cmocka_unit_test(op_in),
        cmocka_unit_test(op_glob),
        cmocka_unit_test(op_regex),
        cmocka_unit_test(op_compare),
        cmocka_unit_test(op_exists),
        cmocka_unit_test(subjects_chain_depth),
        cmocka_unit_test(headers_case_and_repeats),
        cmocka_unit_test(query_decoding),
        cmocka_unit_test(dotdot_doubt),
        cmocka_unit_test(json_pointer_subjects),
        cmocka_unit_test(comb_all),
        cmocka_unit_test(comb_any),
        cmocka_unit_test(comb_not),
        cmocka_unit_test(comb_nested_doubt),
        cmocka_unit_test(time_hours),
        cmocka_unit_test(time_days),
        cmocka_unit_test(time_wraps_midnight),
        cmocka_unit_test(precedence_permutations),
        cmocka_unit_test(precedence_default),
        cmocka_unit_test(precedence_first_in_file_order),
        cmocka_unit_test(holds_listed_in_order),
        cmocka_unit_test(too_many_holds),
        cmocka_unit_test(doubt_at_the_rule),
        cmocka_unit_test(monitor_mode),
        cmocka_unit_test(monitor_hold_under_enforced_hold),
        cmocka_unit_test(tags_and_rule_fields),
        cmocka_unit_test(index_by_tool),
        cmocka_unit_test(index_decisions),
        cmocka_unit_test(trace_reasons),
        cmocka_unit_test(trace_same_decision),
        cmocka_unit_test(match_fields),
        cmocka_unit_test(may_call),
        cmocka_unit_test(empty_fields_never_match),
        cmocka_unit_test(path_regex_doubt),
        cmocka_unit_test(invalid_top),
        cmocka_unit_test(invalid_json),
        cmocka_unit_test(invalid_rules),
        cmocka_unit_test(invalid_references),
        cmocka_unit_test(invalid_match_fields),
        cmocka_unit_test(invalid_hold_keys),
        cmocka_unit_test(invalid_when),
        cmocka_unit_test(invalid_when_operands),
        cmocka_unit_test(invalid_combinators),
        cmocka_unit_test(invalid_time),
        cmocka_unit_test(invalid_tools),
        cmocka_unit_test(invalid_credentials),
        cmocka_unit_test(invalid_identities),
        cmocka_unit_test(invalid_intents),
        cmocka_unit_test(intent_defaults),
        cmocka_unit_test(invalid_secret_patterns),
        cmocka_unit_test(spec_example),
        cmocka_unit_test(identity_agents),
        cmocka_unit_test(identity_ambiguous),
        cmocka_unit_test(identity_groups),
        cmocka_unit_test(host_mapping),
        cmocka_unit_test(reads_body),
        cmocka_unit_test(tool_extras),
        cmocka_unit_test(sha256_and_files),
        cmocka_unit_test(lint_findings),
        cmocka_unit_test(call_from_json),
        cmocka_unit_test(call_from_json_errors),
        cmocka_unit_test(regex_prefixes),
        cmocka_unit_test(path_index_globs),
        cmocka_unit_test(path_index_order),
        cmocka_unit_test(path_index_regex),
        cmocka_unit_test(path_index_deep),
        cmocka_unit_test(path_index_differential),
        cmocka_unit_test(bench_eval),
    };

    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
