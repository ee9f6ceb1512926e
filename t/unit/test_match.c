/* Globs, regexes, JSON pointers and the call accessors of ag_match. */

#include "unit.h"
#include "ag_match.h"
#include "ag_policy.h"


static ag_pool_t *pool;


static int
setup(void **state)
{
    (void) state;
    pool = ag_pool_create();
    return pool == NULL;
}


static int
teardown(void **state)
{
    (void) state;
    ag_pool_destroy(pool);
    return 0;
}


static ag_glob_t *
glob(const char *pat)
{
    char        err[256];
    ag_glob_t  *g = ag_glob_compile(pool, pat, strlen(pat), err, sizeof(err));

    if (g == NULL) {
        fail_msg("glob \"%s\": %s", pat, err);
    }
    return g;
}


static int
gm(const char *pat, const char *s)
{
    return ag_glob_match(glob(pat), s, strlen(s));
}


static void
glob_literal(void **state)
{
    (void) state;
    assert_true(gm("/v1/tickets", "/v1/tickets"));
    assert_false(gm("/v1/tickets", "/v1/tickets/"));
    assert_false(gm("/v1/tickets", "/v1/ticket"));
    assert_false(gm("/v1/tickets", "/V1/tickets"));      /* case-sensitive */
    assert_false(gm("/v1/tickets", "x/v1/tickets"));     /* whole value */
    assert_true(gm("", ""));
    assert_false(gm("", "a"));
    assert_true(ag_glob_is_literal(glob("/a/b")));
    assert_false(ag_glob_is_literal(glob("/a/*")));
}


static void
glob_star_one_segment(void **state)
{
    (void) state;
    assert_true(gm("/v1/*", "/v1/abc"));
    assert_true(gm("/v1/*", "/v1/"));
    assert_false(gm("/v1/*", "/v1/a/b"));
    assert_false(gm("/v1/*", "/v1"));
    assert_true(gm("/v1/*/items", "/v1/7/items"));
    assert_false(gm("/v1/*/items", "/v1/7/8/items"));
    assert_true(gm("/v1/t*s", "/v1/tickets"));
    assert_true(gm("/v1/t*s", "/v1/ts"));
    assert_false(gm("/v1/t*s", "/v1/tickets/s"));
    assert_true(gm("*.json", "a.json"));
    assert_false(gm("*.json", "a/b.json"));
    assert_true(gm("/*/*", "/a/b"));
    assert_false(gm("/*/*", "/a/b/c"));
    assert_true(gm("a*b*c", "axxbyyc"));
    assert_true(gm("a*b*c", "abbc"));
    assert_false(gm("a*b*c", "abcx"));
}


static void
glob_dstar(void **state)
{
    (void) state;
    assert_true(gm("/v1/export/**", "/v1/export/a/b"));
    assert_true(gm("/v1/export/**", "/v1/export/"));
    assert_true(gm("/v1/export/**", "/v1/export/a"));
    /* zero segments: the trailing slash-star-star may vanish entirely */
    assert_true(gm("/v1/export/**", "/v1/export"));
    assert_false(gm("/v1/export/**", "/v1/exports"));
    assert_false(gm("/v1/export/**", "/v1/exportx/a"));
    assert_false(gm("/v1/export/**", "/v1/expor"));
    assert_true(gm("**", ""));
    assert_true(gm("**", "/any/thing/at/all"));
    assert_true(gm("/v1/**.json", "/v1/a/b/c.json"));
    assert_false(gm("/v1/**.json", "/v1/a/b/c.jsonx"));
    assert_true(gm("/v1/**x", "/v1/x"));
}


static void
glob_dstar_middle(void **state)
{
    (void) state;
    assert_true(gm("/a/**/b", "/a/b"));
    assert_true(gm("/a/**/b", "/a/x/b"));
    assert_true(gm("/a/**/b", "/a/x/y/z/b"));
    assert_false(gm("/a/**/b", "/a/xb"));
    assert_false(gm("/a/**/b", "/ab"));
    assert_false(gm("/a/**/b", "/a/b/c"));
    assert_true(gm("/a/**/b/**", "/a/b"));
    assert_true(gm("/a/**/b/**", "/a/q/b/r/s"));
    /* needs a later '**' start after the first failed (backtracking that a
       single-point matcher would get wrong) */
    assert_true(gm("**a/**/b", "ab/a/b"));
    assert_true(gm("/**/*.txt", "/x/y/z.txt"));
    assert_true(gm("/**/*.txt", "/z.txt"));
    assert_false(gm("/**/*.txt", "/x/y/z.txt/w"));
    assert_true(gm("/x/**/y/*", "/x/a/y/b"));
    assert_false(gm("/x/**/y/*", "/x/a/y/b/c"));
}


static void
glob_hosts_and_ids(void **state)
{
    (void) state;
    assert_true(gm("*.example.org", "api.example.org"));
    assert_true(gm("*.example.org", "a.b.example.org"));   /* no '/' in hosts */
    assert_false(gm("*.example.org", "example.org"));
    assert_true(gm("spiffe://example.org/human/*", "spiffe://example.org/human/ann"));
    assert_false(gm("spiffe://example.org/human/*",
                    "spiffe://example.org/human/ann/x"));
}


static void
glob_no_blowup(void **state)
{
    char     *s;
    size_t    n = 20000;

    (void) state;
    s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'a', n);
    s[n] = '\0';
    /* a backtracking matcher is exponential or quadratic-per-star here;
       the automaton is linear in the input */
    assert_false(gm("**a**a**a**a**a**a**a**a**a**b", s));
    assert_false(gm("*a*a*a*a*a*a*a*a*a*b", s));
    assert_true(gm("**a**a**a**a**a**a**a**a**a**", s));
    s[n - 1] = 'b';
    assert_true(gm("**a**a**a**a**a**a**a**a**a**b", s));
    free(s);
}


static void
glob_limits(void **state)
{
    char    err[256], *p;

    (void) state;
    p = malloc(AG_GLOB_MAX + 2);
    assert_non_null(p);
    memset(p, '*', AG_GLOB_MAX + 1);
    p[AG_GLOB_MAX + 1] = '\0';
    assert_null(ag_glob_compile(pool, p, AG_GLOB_MAX + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "longer than"));

    /* a long pattern (many words of states) still matches correctly */
    memset(p, 'x', AG_GLOB_MAX);
    p[0] = '*';
    p[500] = '*';
    p[501] = '*';
    assert_non_null(ag_glob_compile(pool, p, AG_GLOB_MAX, err, sizeof(err)));
    p[AG_GLOB_MAX] = '\0';
    {
        char *s = strdup(p + 1);

        assert_non_null(s);
        s[499] = '/';       /* where the "**" was: '**' matches "/" */
        s[500] = 'x';
        assert_true(gm(p, s));
        free(s);
    }
    free(p);
}


static ag_regex_t *
regex(const char *src)
{
    char         err[256];
    ag_regex_t  *re = ag_regex_compile(pool, src, strlen(src), err, sizeof(err));

    if (re == NULL) {
        fail_msg("regex \"%s\": %s", src, err);
    }
    return re;
}


static ag_tri_t
rm(const char *src, const char *s, size_t len)
{
    ag_scratch_t  sc;
    ag_tri_t      t;

    ag_scratch_init(&sc);
    t = ag_regex_match(regex(src), s, len, &sc);
    assert_false(sc.failed);
    ag_scratch_free(&sc);
    return t;
}


static void
regex_anchored(void **state)
{
    (void) state;
    assert_int_equal(rm("abc", "abc", 3), AG_TRUE);
    assert_int_equal(rm("abc", "xabc", 4), AG_FALSE);
    assert_int_equal(rm("abc", "abcx", 4), AG_FALSE);
    assert_int_equal(rm("a|ab", "ab", 2), AG_TRUE);   /* whole value, any branch */
    assert_int_equal(rm("/v[0-9]+/.*", "/v12/x/y", 8), AG_TRUE);
    assert_int_equal(rm("(a)(b)(c)(d)", "abcd", 4), AG_TRUE);  /* groups > pairs */
    assert_int_equal(rm("x*", "", 0), AG_TRUE);
    assert_int_equal(rm("x*", NULL, 0), AG_TRUE);
    assert_int_equal(rm("\\w+", "caf\xc3\xa9", 5), AG_FALSE);   /* UTF, no UCP */
    assert_int_equal(rm(".+", "caf\xc3\xa9", 5), AG_TRUE);
}


static void
regex_doubt(void **state)
{
    char   s[64];

    (void) state;
    memset(s, 'a', 40);
    s[40] = 'b';
    /* catastrophic backtracking is cut by the match limit: doubt */
    assert_int_equal(rm("(a+)+$", s, 41), AG_DOUBT);
    assert_int_equal(rm("(a|aa)+$", s, 41), AG_DOUBT);
    /* invalid UTF-8 in the value: doubt, never a silent non-match */
    assert_int_equal(rm(".*", "a\xffz", 3), AG_DOUBT);
}


static void
regex_errors(void **state)
{
    char  err[256];

    (void) state;
    assert_null(ag_regex_compile(pool, "a(b", 3, err, sizeof(err)));
    assert_string_equal(err, "invalid regex: missing closing parenthesis at "
                        "offset 3");
    assert_null(ag_regex_compile(pool, "*a", 2, err, sizeof(err)));
    assert_non_null(strstr(err, "at offset 0"));
    assert_int_equal(ag_regex_check("[a-", 3, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid regex"));
    assert_int_equal(ag_regex_check("AKIA[0-9A-Z]{16}", 16, err, sizeof(err)), 0);
}


static json_t *
jp(const char *ptr, json_t *doc)
{
    char        err[256];
    ag_jptr_t  *p = ag_jptr_compile(pool, ptr, strlen(ptr), err, sizeof(err));

    if (p == NULL) {
        fail_msg("pointer \"%s\": %s", ptr, err);
    }
    return ag_jptr_get(p, doc);
}


static void
jptr_paths(void **state)
{
    json_t  *doc;

    (void) state;
    doc = json_loads("{\"a\": {\"b\": 7}, \"list\": [10, 20, {\"c\": true}],"
                     " \"x/y\": 1, \"m~n\": 2, \"\": 3, \"0\": 4,"
                     " \"~01\": 5}", 0, NULL);
    assert_non_null(doc);

    assert_ptr_equal(jp("", doc), doc);
    assert_int_equal(json_integer_value(jp("/a/b", doc)), 7);
    assert_int_equal(json_integer_value(jp("/list/1", doc)), 20);
    assert_true(json_is_true(jp("/list/2/c", doc)));
    assert_int_equal(json_integer_value(jp("/x~1y", doc)), 1);
    assert_int_equal(json_integer_value(jp("/m~0n", doc)), 2);
    assert_int_equal(json_integer_value(jp("/~001", doc)), 5);  /* ~0 then "1" */
    assert_int_equal(json_integer_value(jp("/", doc)), 3);       /* key "" */
    assert_int_equal(json_integer_value(jp("/0", doc)), 4);      /* object key */

    assert_null(jp("/list/3", doc));
    assert_null(jp("/list/-", doc));
    assert_null(jp("/list/01", doc));
    assert_null(jp("/list/+1", doc));
    assert_null(jp("/a/b/c", doc));
    assert_null(jp("/nope", doc));
    json_decref(doc);
}


static void
jptr_errors(void **state)
{
    char  err[256];

    (void) state;
    assert_null(ag_jptr_compile(pool, "/a~2", 4, err, sizeof(err)));
    assert_non_null(strstr(err, "bad escape"));
    assert_null(ag_jptr_compile(pool, "/a~", 3, err, sizeof(err)));
    assert_null(ag_jptr_compile(pool, "a", 1, err, sizeof(err)));
    assert_non_null(strstr(err, "starts with '/'"));
}


static void
pct_decoding(void **state)
{
    char    out[64];
    size_t  n;

    (void) state;
    assert_int_equal(ag_pct_decode("%41+b%2f", 8, out, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "A b/", 4);
    assert_int_equal(ag_pct_decode("%4", 2, out, &n), -1);
    assert_int_equal(ag_pct_decode("%zz", 3, out, &n), -1);
    assert_int_equal(ag_pct_decode("a%", 2, out, &n), -1);
    assert_int_equal(ag_pct_decode("", 0, out, &n), 0);
    assert_int_equal(n, 0);
}


static void
query_lookup(void **state)
{
    ag_call_t  c;
    ag_str_t   v;
    char       buf[128];

    (void) state;
    memset(&c, 0, sizeof(c));
    c.query.p = "a=1&b=x+y%21&&c&a%20b=2&%zz=1";
    c.query.len = strlen(c.query.p);

    /* a name that does not decode: cannot tell which names are present */
    assert_int_equal(ag_call_query(&c, "a", 1, buf, &v), -1);

    /* a bad value concerns only its own parameter */
    c.query.p = "a=1&d=%zz";
    c.query.len = strlen(c.query.p);
    assert_int_equal(ag_call_query(&c, "a", 1, buf, &v), 1);
    assert_int_equal(ag_call_query(&c, "d", 1, buf, &v), -1);

    c.query.p = "a=1&b=x+y%21&&c&a%20b=2&dup=1&dup=2";
    c.query.len = strlen(c.query.p);
    assert_int_equal(ag_call_query(&c, "a", 1, buf, &v), 1);
    assert_int_equal(v.len, 1);
    assert_int_equal(ag_call_query(&c, "b", 1, buf, &v), 1);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.p, "x y!", 4);
    assert_int_equal(ag_call_query(&c, "c", 1, buf, &v), 1);
    assert_int_equal(v.len, 0);
    assert_int_equal(ag_call_query(&c, "a b", 3, buf, &v), 1);
    assert_int_equal(ag_call_query(&c, "dup", 3, buf, &v), 2);
    assert_int_equal(ag_call_query(&c, "zz", 2, buf, &v), 0);

    c.query.p = "a=%2";
    c.query.len = 4;
    assert_int_equal(ag_call_query(&c, "a", 1, buf, &v), -1);
    c.query.p = NULL;
    c.query.len = 0;
    assert_int_equal(ag_call_query(&c, "a", 1, buf, &v), 0);
}


static void
header_lookup(void **state)
{
    ag_header_t  h[3] = {
        { ag_str_lit("X-Priority"), ag_str_lit("high") },
        { ag_str_lit("x-dup"), ag_str_lit("1") },
        { ag_str_lit("X-DUP"), ag_str_lit("2") },
    };
    ag_call_t    c;
    ag_str_t     v;

    (void) state;
    memset(&c, 0, sizeof(c));
    c.headers = h;
    c.nheaders = 3;
    assert_int_equal(ag_call_header(&c, "x-priority", 10, &v), 1);
    assert_memory_equal(v.p, "high", 4);
    assert_int_equal(ag_call_header(&c, "x-dup", 5, &v), 2);
    assert_int_equal(ag_call_header(&c, "x-none", 6, &v), 0);
}


static void
dotdot(void **state)
{
    (void) state;
    assert_true(ag_has_dotdot("..", 2));
    assert_true(ag_has_dotdot("../etc", 6));
    assert_true(ag_has_dotdot("/srv/../etc", 11));
    assert_true(ag_has_dotdot("a\\..\\b", 6));
    assert_true(ag_has_dotdot("/srv/..", 7));
    assert_false(ag_has_dotdot("a..b", 4));
    assert_false(ag_has_dotdot("/x/.../y", 8));
    assert_false(ag_has_dotdot("/x/./y", 6));
    assert_false(ag_has_dotdot("", 0));
    assert_false(ag_has_dotdot("1..2", 4));
}


static void
decimals(void **state)
{
    int      is_int;
    int64_t  i;
    double   d;

    (void) state;
    assert_int_equal(ag_decimal_parse("12", 2, &is_int, &i, &d), 0);
    assert_true(is_int);
    assert_int_equal(i, 12);
    assert_int_equal(ag_decimal_parse("-3.5", 4, &is_int, &i, &d), 0);
    assert_false(is_int);
    assert_true(d == -3.5);
    assert_int_equal(ag_decimal_parse("5000.01", 7, &is_int, &i, &d), 0);
    assert_true(d > 5000.0 && d < 5000.02);
    assert_int_equal(ag_decimal_parse("1e3", 3, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse("1.", 2, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse(".5", 2, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse("", 0, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse("-", 1, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse("+1", 2, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse(" 1", 2, &is_int, &i, &d), -1);
    assert_int_equal(ag_decimal_parse("0x10", 4, &is_int, &i, &d), -1);
    /* too long for an int64: a double */
    assert_int_equal(ag_decimal_parse("123456789012345678901", 21, &is_int, &i,
                                      &d), 0);
    assert_false(is_int);
    assert_true(d > 1.2e20);
}


static void
durations(void **state)
{
    (void) state;
    assert_int_equal(ag_duration_parse("90s", 3), 90);
    assert_int_equal(ag_duration_parse("10m", 3), 600);
    assert_int_equal(ag_duration_parse("1h", 2), 3600);
    assert_int_equal(ag_duration_parse("2d", 2), 172800);
    assert_int_equal(ag_duration_parse("0s", 2), 0);
    assert_int_equal(ag_duration_parse("10", 2), -1);
    assert_int_equal(ag_duration_parse("s", 1), -1);
    assert_int_equal(ag_duration_parse("1.5h", 4), -1);
    assert_int_equal(ag_duration_parse("-1s", 3), -1);
    assert_int_equal(ag_duration_parse("10M", 3), -1);
    assert_int_equal(ag_duration_parse("1h30m", 5), -1);
    assert_int_equal(ag_duration_parse(" 1s", 3), -1);
    assert_int_equal(ag_duration_parse("99999999999999999d", 18), -1);
    assert_int_equal(ag_duration_parse("10mx", 3), 600);  /* explicit length */
}


static void
tri_logic(void **state)
{
    (void) state;
    assert_int_equal(ag_tri_not(AG_TRUE), AG_FALSE);
    assert_int_equal(ag_tri_not(AG_FALSE), AG_TRUE);
    assert_int_equal(ag_tri_not(AG_DOUBT), AG_DOUBT);
    assert_string_equal(ag_tri_name(AG_DOUBT), "doubt");
}


static int cleanup_order[4];
static int ncleanup;

static void
cleanup_fn(void *data)
{
    cleanup_order[ncleanup++] = *(int *) data;
}


static void
pool_cleanups(void **state)
{
    ag_pool_t  *p;
    int         one = 1, two = 2;
    char       *big, *s;

    (void) state;
    ncleanup = 0;
    p = ag_pool_create();
    assert_non_null(p);
    assert_int_equal(ag_pool_cleanup_add(p, cleanup_fn, &one), 0);
    assert_int_equal(ag_pool_cleanup_add(p, cleanup_fn, &two), 0);
    big = ag_pool_alloc(p, 100000);             /* a chunk of its own */
    assert_non_null(big);
    assert_int_equal(big[99999], 0);
    s = ag_pool_strndup(p, "abc", 2);
    assert_string_equal(s, "ab");
    assert_int_equal(((uintptr_t) ag_pool_alloc(p, 3)) % 16, 0);
    ag_pool_destroy(p);
    assert_int_equal(ncleanup, 2);
    assert_int_equal(cleanup_order[0], 2);      /* latest first */
    assert_int_equal(cleanup_order[1], 1);
}


static void
subject_values(void **state)
{
    ag_header_t  h[3] = {
        { ag_str_lit("X-A"), ag_str_lit("1") },
        { ag_str_lit("x-b"), ag_str_lit("2") },
        { ag_str_lit("X-B"), ag_str_lit("3") },
    };
    ag_call_t    c;
    json_t      *v, *body;

    (void) state;
    memset(&c, 0, sizeof(c));
    c.headers = h;
    c.nheaders = 3;
    c.query.p = "q=a+b&t=1&t=2";
    c.query.len = strlen(c.query.p);
    body = json_loads("{\"amount\": 9000, \"a/b\": [1]}", 0, NULL);
    c.body = body;
    c.chain = (ag_str_t) ag_str_lit("root>kid");
    c.depth = 1;

    v = ag_subject_value(&c, "header:x-a", 10);
    assert_string_equal(json_string_value(v), "1");
    json_decref(v);
    v = ag_subject_value(&c, "header:X-B", 10);
    assert_int_equal(json_array_size(v), 2);
    json_decref(v);
    assert_null(ag_subject_value(&c, "header:nope", 11));
    v = ag_subject_value(&c, "query:q", 7);
    assert_string_equal(json_string_value(v), "a b");
    json_decref(v);
    v = ag_subject_value(&c, "query:t", 7);
    assert_int_equal(json_array_size(v), 2);
    json_decref(v);
    v = ag_subject_value(&c, "body:/amount", 12);
    assert_int_equal(json_integer_value(v), 9000);
    json_decref(v);
    v = ag_subject_value(&c, "body:/a~1b/0", 12);
    assert_int_equal(json_integer_value(v), 1);
    json_decref(v);
    assert_null(ag_subject_value(&c, "args:/x", 7));
    v = ag_subject_value(&c, "chain", 5);
    assert_string_equal(json_string_value(v), "root>kid");
    json_decref(v);
    v = ag_subject_value(&c, "depth", 5);
    assert_int_equal(json_integer_value(v), 1);
    json_decref(v);
    json_decref(body);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glob_literal),
        cmocka_unit_test(glob_star_one_segment),
        cmocka_unit_test(glob_dstar),
        cmocka_unit_test(glob_dstar_middle),
        cmocka_unit_test(glob_hosts_and_ids),
        cmocka_unit_test(glob_no_blowup),
        cmocka_unit_test(glob_limits),
        cmocka_unit_test(regex_anchored),
        cmocka_unit_test(regex_doubt),
        cmocka_unit_test(regex_errors),
        cmocka_unit_test(jptr_paths),
        cmocka_unit_test(jptr_errors),
        cmocka_unit_test(pct_decoding),
        cmocka_unit_test(query_lookup),
        cmocka_unit_test(header_lookup),
        cmocka_unit_test(dotdot),
        cmocka_unit_test(decimals),
        cmocka_unit_test(durations),
        cmocka_unit_test(tri_logic),
        cmocka_unit_test(pool_cleanups),
        cmocka_unit_test(subject_values),
    };

    return cmocka_run_group_tests_name("match", tests, setup, teardown);
}
