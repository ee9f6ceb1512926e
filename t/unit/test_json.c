#include "unit.h"
#include "ag_json.h"

static void
parse_ok(void **state)
{
    char    err[256];
    json_t *v = ag_json_parse("{\"a\": [1, 2, {\"b\": null}]}", 26, err, sizeof(err));

    (void) state;
    assert_non_null(v);
    assert_int_equal(json_array_size(json_object_get(v, "a")), 3);
    json_decref(v);
}

static void
refuses(const char *text, size_t len, const char *want)
{
    char    err[256];
    json_t *v = ag_json_parse(text, len, err, sizeof(err));

    if (v != NULL) {
        json_decref(v);
        fail_msg("accepted: %.*s", (int) len, text);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
}

static void
refuse_duplicates(void **state)
{
    (void) state;
    refuses("{\"a\": 1, \"a\": 2}", 16, "duplicate");
}

static void
refuse_depth(void **state)
{
    char buf[200];
    int  i;

    (void) state;
    for (i = 0; i < 65; i++) {
        buf[i] = '[';
        buf[65 + i] = ']';
    }
    refuses(buf, 130, "deeper than 64");

    /* 64 levels are fine */
    {
        char    err[256];
        json_t *v = ag_json_parse(buf + 1, 128, err, sizeof(err));
        assert_non_null(v);
        json_decref(v);
    }
}

static void
refuse_bad_utf8_nul_trailing(void **state)
{
    (void) state;
    refuses("\"\xc3\x28\"", 4, "malformed");
    refuses("\"a\\u0000b\"", 10, "malformed");
    refuses("{} {}", 5, "malformed");
    refuses("", 0, "empty");
    refuses("123456789012345678901234567890", 30, "malformed");
    refuses("{\"a\": \"]\"}}", 11, "malformed");
}

static void
depth_ignores_strings(void **state)
{
    (void) state;
    assert_int_equal(ag_json_depth("{\"[[[\\\"\": [1]}", 14, 64), 2);
    assert_int_equal(ag_json_depth("]", 1, 64), -1);
}


/* --- ag_json_parse against ag_json_parse_ref ---------------------------------

   Every case runs through both parsers. An accepted text must give the
   value `want` says, as jansson's compact, ASCII-only encoding (which tells
   an integer from a real: 1 and 1.0, 0 and -0.0); a refused one an error
   holding `want`. Texts may hold NUL bytes, so each has its length. */

#define T(s)  s, sizeof(s) - 1

typedef struct {
    const char  *text;
    size_t       len;
    int          ok;
    const char  *want;
} json_case_t;

#define OK   1
#define NO   0

#define BRACKETS_10  "[[[[[[[[[["
#define BRACKETS_70  BRACKETS_10 BRACKETS_10 BRACKETS_10 BRACKETS_10          \
                     BRACKETS_10 BRACKETS_10 BRACKETS_10

static const json_case_t  cases[] = {

    /* any value at the top (JSON_DECODE_ANY) */
    { T("1"), OK, "1" },
    { T("\"s\""), OK, "\"s\"" },
    { T("true"), OK, "true" },
    { T("false"), OK, "false" },
    { T("null"), OK, "null" },
    { T("[]"), OK, "[]" },
    { T("{}"), OK, "{}" },
    { T("{\"a\":[1,{\"b\":null}],\"c\":{}}"), OK,
      "{\"a\":[1,{\"b\":null}],\"c\":{}}" },

    /* empty, whitespace, trailing data */
    { T(""), NO, "empty JSON text" },
    { T(" "), NO, "malformed" },
    { T(" \t\n\r"), NO, "malformed" },
    { T(" \t\n\r[ \t\n\r1 \t\n\r, \t\n\r{ \t\n\r\"a\" \t\n\r: \t\n\r2"
        " \t\n\r} \t\n\r] \t\n\r"), OK, "[1,{\"a\":2}]" },
    { T("\f1"), NO, "malformed" },
    { T("1\f"), NO, "malformed" },
    { T("[1,\v2]"), NO, "malformed" },
    { T("\xc2\xa0" "1"), NO, "malformed" },          /* NBSP */
    { T("\xef\xbb\xbf{}"), NO, "malformed" },        /* BOM */
    { T("{} {}"), NO, "malformed" },
    { T("1 2"), NO, "malformed" },
    { T("[] x"), NO, "malformed" },
    { T("\"a\"\"b\""), NO, "malformed" },

    /* structure */
    { T("[1,]"), NO, "malformed" },
    { T("[,1]"), NO, "malformed" },
    { T("[1 2]"), NO, "malformed" },
    { T("[1"), NO, "malformed" },
    { T("[1}"), NO, "malformed" },
    { T("{\"a\":1]"), NO, "malformed" },
    { T("{\"a\":1,}"), NO, "malformed" },
    { T("{,}"), NO, "malformed" },
    { T("{\"a\" 1}"), NO, "malformed" },
    { T("{\"a\":}"), NO, "malformed" },
    { T("{1:2}"), NO, "malformed" },
    { T("{a:2}"), NO, "malformed" },
    { T("{'a':2}"), NO, "malformed" },
    { T("]"), NO, "malformed" },
    { T("}"), NO, "malformed" },
    { T(":"), NO, "malformed" },
    { T(","), NO, "malformed" },

    /* literals */
    { T("[true,false,null]"), OK, "[true,false,null]" },
    { T("tru"), NO, "malformed" },
    { T("truex"), NO, "malformed" },
    { T("[nul]"), NO, "malformed" },
    { T("True"), NO, "malformed" },
    { T("NULL"), NO, "malformed" },
    { T("nan"), NO, "malformed" },
    { T("Infinity"), NO, "malformed" },

    /* duplicate keys, at any depth, compared after decoding */
    { T("{\"a\":1,\"a\":2}"), NO, "malformed" },
    { T("{\"a\":1,\"a\":1}"), NO, "malformed" },
    { T("{\"\":1,\"\":2}"), NO, "malformed" },
    { T("{\"a\":1,\"\\u0061\":2}"), NO, "malformed" },
    { T("{\"\\/\":1,\"/\":2}"), NO, "malformed" },
    { T("{\"\xc3\xa9\":1,\"\\u00e9\":2}"), NO, "malformed" },
    { T("[{\"x\":{\"y\":[{\"k\":1,\"k\":2}]}}]"), NO, "malformed" },
    { T("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}"), OK,
      "{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}" },
    { T("{\"a\":{},\"a\":[]}"), NO, "malformed" },
    { T("{\"a\":1,\"A\":2,\"a \":3}"), OK, "{\"a\":1,\"A\":2,\"a \":3}" },
    { T("{\"\xc3\xa9\":1,\"e\\u0301\":2}"), OK,
      "{\"\\u00E9\":1,\"e\\u0301\":2}" },              /* not normalized */

    /* keys keep document order */
    { T("{\"z\":1,\"a\":2,\"m\":3}"), OK, "{\"z\":1,\"a\":2,\"m\":3}" },

    /* integers: json_int_t or refused */
    { T("0"), OK, "0" },
    { T("-0"), OK, "0" },                   /* the integer 0, not -0.0 */
    { T("-1"), OK, "-1" },
    { T("1234567890123456789"), OK, "1234567890123456789" },
    { T("9223372036854775807"), OK, "9223372036854775807" },
    { T("-9223372036854775808"), OK, "-9223372036854775808" },
    { T("9223372036854775808"), NO, "too big integer" },
    { T("-9223372036854775809"), NO, "too big negative integer" },
    { T("10000000000000000000"), NO, "too big integer" },
    { T("123456789012345678901234567890"), NO, "too big integer" },
    { T("[1,99999999999999999999]"), NO, "too big integer" },

    /* number grammar */
    { T("01"), NO, "malformed" },
    { T("-01"), NO, "malformed" },
    { T("00"), NO, "malformed" },
    { T("+1"), NO, "malformed" },
    { T(".5"), NO, "malformed" },
    { T("5."), NO, "malformed" },
    { T("5.e1"), NO, "malformed" },
    { T("-"), NO, "malformed" },
    { T("-a"), NO, "malformed" },
    { T("- 1"), NO, "malformed" },
    { T("1e"), NO, "malformed" },
    { T("1e+"), NO, "malformed" },
    { T("1e-"), NO, "malformed" },
    { T("1E+-1"), NO, "malformed" },
    { T("0x10"), NO, "malformed" },
    { T("1.5.3"), NO, "malformed" },
    { T("1-2"), NO, "malformed" },
    { T("0e"), NO, "malformed" },

    /* reals: strtod's value, refused only on overflow */
    { T("0.0"), OK, "0.0" },
    { T("-0.0"), OK, "-0.0" },
    { T("-0e-5"), OK, "-0.0" },
    { T("0e99999"), OK, "0.0" },
    { T("1.0"), OK, "1.0" },
    { T("1e2"), OK, "100.0" },
    { T("1E+2"), OK, "100.0" },
    { T("1e-0"), OK, "1.0" },
    { T("100e-2"), OK, "1.0" },
    { T("9.5"), OK, "9.5" },
    { T("0.1"), OK, "0.10000000000000001" },
    { T("-28.5"), OK, "-28.5" },
    { T("3.14159265358979"), OK, "3.14159265358979" },
    { T("1e22"), OK, "1e22" },
    { T("1e23"), OK, "9.9999999999999992e22" },
    { T("1e-22"), OK, "1e-22" },
    { T("9007199254740993.0"), OK, "9007199254740992.0" },
    { T("123456789012345678901234567890.0"), OK, "1.2345678901234568e29" },
    { T("0.000000000000000000000000000001"), OK, "1.0000000000000001e-30" },
    { T("1.7976931348623157e308"), OK, "1.7976931348623157e308" },
    { T("1e-400"), OK, "0.0" },             /* underflow: accepted as 0 */
    { T("-1e-400"), OK, "-0.0" },
    { T("4.9e-324"), OK, "4.9406564584124654e-324" },
    { T("2.2250738585072011e-308"), OK, "2.2250738585072009e-308" },
    { T("1E400"), NO, "real number overflow" },
    { T("-1e400"), NO, "real number overflow" },
    { T("1.797693134862316e308"), NO, "real number overflow" },

    /* strings: escapes */
    { T("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), OK,
      "\"\\\"\\\\/\\b\\f\\n\\r\\t\"" },
    { T("\"\\u0041\\u00e9\\u20AC\\uFFFF\""), OK,
      "\"A\\u00E9\\u20AC\\uFFFF\"" },
    { T("\"\\u0001\\u001f\""), OK, "\"\\u0001\\u001F\"" },
    { T("\"\\ud83d\\ude00\""), OK, "\"\\uD83D\\uDE00\"" },
    { T("\"\\uDBFF\\uDFFF\""), OK, "\"\\uDBFF\\uDFFF\"" },
    { T("\"\\u0000\""), NO, "malformed" },
    { T("{\"\\u0000\":1}"), NO, "malformed" },
    { T("\"a\\u0000\""), NO, "malformed" },
    { T("\"\\ud800\""), NO, "malformed" },
    { T("\"\\udc00\""), NO, "malformed" },
    { T("\"\\ude00\\ud83d\""), NO, "malformed" },
    { T("\"\\ud800\\u0041\""), NO, "malformed" },
    { T("\"\\ud800\\ud800\""), NO, "malformed" },
    { T("\"\\ud800x\""), NO, "malformed" },
    { T("\"\\ud800\\n\""), NO, "malformed" },
    { T("\"\\ud800\\u12\""), NO, "malformed" },
    { T("\"\\u12\""), NO, "malformed" },
    { T("\"\\u00g0\""), NO, "malformed" },
    { T("\"\\U0041\""), NO, "malformed" },
    { T("\"\\x41\""), NO, "malformed" },
    { T("\"\\a\""), NO, "malformed" },
    { T("\"\\'\""), NO, "malformed" },
    { T("\"\\ \""), NO, "malformed" },
    { T("\"abc\\"), NO, "malformed" },
    { T("\"abc\\\""), NO, "malformed" },
    { T("\"abc"), NO, "malformed" },
    { T("\""), NO, "malformed" },

    /* strings: raw bytes */
    { T("\"a\tb\""), NO, "malformed" },
    { T("\"a\nb\""), NO, "malformed" },
    { T("\"\x01\""), NO, "malformed" },
    { T("\"\x1f\""), NO, "malformed" },
    { T("\"a\0b\""), NO, "malformed" },
    { T("\"\x7f\""), OK, "\"\x7f\"" },
    { T("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""), OK,
      "\"\\u0080\\u07FF\\u0800\\uD7FF\\uE000\\uFFFF\\uD800\\uDC00"
      "\\uDBFF\\uDFFF\"" },
    { T("\"\x80\""), NO, "malformed" },
    { T("\"\xbf\""), NO, "malformed" },
    { T("\"\xc0\xaf\""), NO, "malformed" },        /* overlong '/' */
    { T("\"\xc1\xbf\""), NO, "malformed" },
    { T("\"\xe0\x9f\xbf\""), NO, "malformed" },    /* overlong U+07FF */
    { T("\"\xf0\x8f\xbf\xbf\""), NO, "malformed" },
    { T("\"\xed\xa0\x80\""), NO, "malformed" },    /* surrogate U+D800 */
    { T("\"\xed\xbf\xbf\""), NO, "malformed" },
    { T("\"\xf4\x90\x80\x80\""), NO, "malformed" },/* U+110000 */
    { T("\"\xf5\x80\x80\x80\""), NO, "malformed" },
    { T("\"\xff\""), NO, "malformed" },
    { T("\"\xc3\x28\""), NO, "malformed" },
    { T("\"\xe2\x82\""), NO, "malformed" },        /* cut short */
    { T("\"\xe2\x82"), NO, "malformed" },
    { T("\"\xc3\""), NO, "malformed" },
    { T("[1,\xc3\xa9]"), NO, "malformed" },
    { T("\"\xc3\xa9\\n\xe2\x82\xac\""), OK, "\"\\u00E9\\n\\u20AC\"" },

    /* jansson cannot unget a NUL, and skips one right after a number or a
       literal: both parsers refuse every NUL byte before reading */
    { T("1\0"), NO, "NUL" },
    { T("[1\0]"), NO, "NUL" },
    { T("[1\0,2]"), NO, "NUL" },
    { T("[1.5\0,-0\0,1e5\0]"), NO, "NUL" },
    { T("[true\0,false\0,null\0]"), NO, "NUL" },
    { T("{\"a\":null\0}"), NO, "NUL" },
    { T("1\0 "), NO, "NUL" },
    { T("1\0\0"), NO, "malformed" },
    { T("1 \0"), NO, "malformed" },
    { T("\0"), NO, "malformed" },
    { T("\0" "1"), NO, "malformed" },
    { T("\"a\"\0"), NO, "malformed" },
    { T("[]\0"), NO, "malformed" },
    { T("[1]\0"), NO, "malformed" },
    { T("{\"a\"\0:1}"), NO, "malformed" },
    { T("1.\0"), NO, "malformed" },
    { T("-\0" "1"), NO, "malformed" },
    { T("1e9999\0"), NO, "NUL" },
    { T("1e9999"), NO, "real number overflow" },

    /* depth: ag_json_depth over the whole text decides first */
    { T("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
      OK, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1"
          "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]" },
    { T("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
      NO, "deeper than 64" },
    /* malformed early, too deep later: too deep, as the reference says */
    { T("x[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
      NO, "deeper than 64" },
    { T("{\"a\":1,\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]}"), NO, "deeper than 64" },
    /* ... unless the count went below zero first */
    { T("][[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
      NO, "malformed" },
    /* brackets in strings do not count */
    { T("[\"" BRACKETS_70 "\"]"), OK, "[\"" BRACKETS_70 "\"]" },
};


/* The compact ASCII encoding of v, for comparing values with their types. */
static char *
dump(json_t *v)
{
    char  *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);

    assert_non_null(s);
    return s;
}


static void
check_case(const json_case_t *c)
{
    char     ferr[256], rerr[256], *fs, *rs;
    json_t  *f, *r;

    f = ag_json_parse(c->text, c->len, ferr, sizeof(ferr));
    r = ag_json_parse_ref(c->text, c->len, rerr, sizeof(rerr));

    if (c->ok) {
        if (f == NULL || r == NULL) {
            fail_msg("%.*s: refused: fast \"%s\", reference \"%s\"",
                     (int) c->len, c->text, f ? "-" : ferr, r ? "-" : rerr);
        }

        fs = dump(f);
        rs = dump(r);
        if (strcmp(fs, c->want) != 0 || strcmp(rs, c->want) != 0) {
            fail_msg("%.*s: fast %s, reference %s, want %s", (int) c->len,
                     c->text, fs, rs, c->want);
        }
        assert_true(json_equal(f, r));

        free(fs);
        free(rs);
        json_decref(f);
        json_decref(r);
        return;
    }

    if (f != NULL || r != NULL) {
        fail_msg("%.*s: accepted by the %s parser", (int) c->len, c->text,
                 f ? "fast" : "reference");
    }

    if (strstr(ferr, c->want) == NULL || strstr(rerr, c->want) == NULL) {
        fail_msg("%.*s: fast \"%s\", reference \"%s\", want \"%s\"",
                 (int) c->len, c->text, ferr, rerr, c->want);
    }
}


static void
fast_matches_reference(void **state)
{
    size_t  i;

    (void) state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_case(&cases[i]);
    }
}


/* Long strings with escapes (past the parser's fixed buffers), long keys
   with escapes, many keys: the same values from both. */
static void
fast_matches_reference_long(void **state)
{
    char     *t, *p, ferr[256], rerr[256], *fs, *rs;
    size_t    i;
    json_t   *f, *r;

    (void) state;
    t = malloc(64 * 1024);
    assert_non_null(t);

    p = t;
    p += sprintf(p, "{\"");
    for (i = 0; i < 700; i++) {
        p += sprintf(p, "k\\t\\u00e9");
    }
    p += sprintf(p, "\":\"");
    for (i = 0; i < 2000; i++) {
        p += sprintf(p, "v\\n\xe2\x82\xac\\ud83d\\ude00");
    }
    p += sprintf(p, "\"");
    for (i = 0; i < 500; i++) {
        p += sprintf(p, ",\"key%zu\":[%zu,%zu.5,\"s\\\"%zu\"]", i, i, i, i);
    }
    p += sprintf(p, "}");

    f = ag_json_parse(t, (size_t) (p - t), ferr, sizeof(ferr));
    r = ag_json_parse_ref(t, (size_t) (p - t), rerr, sizeof(rerr));
    assert_non_null(f);
    assert_non_null(r);
    fs = dump(f);
    rs = dump(r);
    assert_string_equal(fs, rs);
    assert_int_equal(json_object_size(f), 501);

    free(fs);
    free(rs);
    json_decref(f);
    json_decref(r);
    free(t);
}


/* Where the error is: the offset of the first byte that cannot be read. */
static void
error_offsets(void **state)
{
    char     err[256];
    size_t   i;

    static const struct {
        const char  *text;
        const char  *err;
    } want[] = {
        { "[1,]", "malformed JSON at byte 3: " },
        { "{\"a\":1,\"a\":2}", "malformed JSON at byte 7: duplicate key" },
        { "\"ab\\x\"", "malformed JSON at byte 3: " },
        { "\"ab\xc0\xaf\"", "malformed JSON at byte 3: " },
        { "01", "malformed JSON at byte 1: " },
        { "[1", "malformed JSON at byte 2: " },
        { "\"abc", "malformed JSON at byte 4: " },
        { "1 x", "malformed JSON at byte 2: " },
    };

    (void) state;
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_null(ag_json_parse(want[i].text, strlen(want[i].text), err,
                                  sizeof(err)));
        if (strncmp(err, want[i].err, strlen(want[i].err)) != 0) {
            fail_msg("%s: \"%s\", want \"%s...\"", want[i].text, err,
                     want[i].err);
        }
    }

    /* no room for the error is fine (ag_task_token_verify passes none) */
    assert_null(ag_json_parse("[", 1, NULL, 0));
    assert_null(ag_json_parse("", 0, NULL, 0));
}


/*
 * Random texts: mutations of valid documents (bytes flipped, inserted,
 * dropped, spliced from a list of awkward tokens), each through both
 * parsers. A cheap, deterministic cousin of the json_diff fuzz target, so
 * that make unit catches a disagreement without clang.
 */

static uint64_t  rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t) (rng_state >> 32);
}

static void
compare_both(const char *t, size_t len)
{
    char     ferr[256], rerr[256], *fs, *rs;
    json_t  *f, *r;

    f = ag_json_parse(t, len, ferr, sizeof(ferr));
    r = ag_json_parse_ref(t, len, rerr, sizeof(rerr));

    if ((f == NULL) != (r == NULL)) {
        fail_msg("disagree on %zu bytes \"%.*s\": fast %s, reference %s", len,
                 (int) len, t, f ? "accepted" : ferr, r ? "accepted" : rerr);
    }

    if (f == NULL) {
        if ((strstr(ferr, "deeper") == NULL) != (strstr(rerr, "deeper") == NULL))
        {
            fail_msg("\"%.*s\": fast \"%s\", reference \"%s\"", (int) len, t,
                     ferr, rerr);
        }
        return;
    }

    fs = dump(f);
    rs = dump(r);
    if (strcmp(fs, rs) != 0) {
        fail_msg("\"%.*s\": fast %s, reference %s", (int) len, t, fs, rs);
    }

    free(fs);
    free(rs);
    json_decref(f);
    json_decref(r);
}

static void
fast_matches_reference_random(void **state)
{
    char     buf[512];
    size_t   i, k, n, len, at, tl;
    uint32_t op;

    static const char  *docs[] = {
        "{\"amount\":1200,\"currency\":\"EUR\",\"items\":[{\"price\":9.5,"
        "\"qty\":1,\"sku\":\"SKU-01001\"}],\"notify\":false,\"note\":null}",
        "[1,-0,0.5,-1.25e-3,1E+2,9223372036854775807,\"a\\u00e9\\n\","
        "\"\\ud83d\\ude00\",true,{}]",
        "{\"\\u0061\":{\"b\":[[[\"x\"]]],\"c\":\"caf\xc3\xa9 \xe2\x82\xac\"}}",
        " [ 1 , { \"k\" : \"v\" } ]\n",
    };

    static const char  *toks[] = {
        "\0", "\"", "\\", "\\u", "\\ud800", "\\udc00", "\\u0000", "\\u0061",
        "{", "}", "[", "]", ":", ",", "-", "0", "1", "e", "E", ".", "+",
        "1e400", "1e-400", "9223372036854775808", "true", "null", " ",
        "\t", "\f", "\x7f", "\x80", "\xc3\xa9", "\xed\xa0\x80", "\xf4\x90",
        "\"a\"", "\"a\":1,", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    };

    (void) state;

    for (i = 0; i < 20000; i++) {
        const char *d = docs[rng() % (sizeof(docs) / sizeof(docs[0]))];

        len = strlen(d);
        memcpy(buf, d, len);

        n = 1 + rng() % 4;
        for (k = 0; k < n; k++) {
            op = rng() % 4;
            at = len ? rng() % (len + 1) : 0;

            if (op == 0 && at < len) {                  /* flip a byte */
                buf[at] = (char) rng();

            } else if (op == 1 && at < len) {           /* drop bytes */
                tl = 1 + rng() % 3;
                tl = tl > len - at ? len - at : tl;
                memmove(buf + at, buf + at + tl, len - at - tl);
                len -= tl;

            } else {                                    /* insert a token */
                const char *tok = toks[rng() % (sizeof(toks) / sizeof(toks[0]))];

                tl = *tok ? strlen(tok) : 1;
                if (len + tl > sizeof(buf)) {
                    continue;
                }
                memmove(buf + at + tl, buf + at, len - at);
                memcpy(buf + at, tok, tl);
                len += tl;
            }
        }

        compare_both(buf, len);

        /* and every prefix of some of them */
        if (i % 64 == 0) {
            for (k = 0; k < len; k++) {
                compare_both(buf, k);
            }
        }
    }
}


/* Out of memory at every allocation in turn: NULL with the error, and
   nothing left allocated (valgrind or LeakSanitizer would say). */

static long  alloc_left;
static long  alloc_live;

static void *
failing_malloc(size_t n)
{
    void  *p;

    if (alloc_left-- <= 0) {
        return NULL;
    }
    p = malloc(n);
    if (p != NULL) {
        alloc_live++;
    }
    return p;
}

static void
counting_free(void *p)
{
    if (p != NULL) {
        alloc_live--;
    }
    free(p);
}

static void
out_of_memory(void **state)
{
    long         k;
    char         err[256];
    json_t      *v;
    json_malloc_t  om;
    json_free_t    of;

    static const char  text[] =
        "{\"a\":[1,2.5,\"s\",{\"b\":[true,null,\"c\\u00e9\"]}],"
        "\"k\\n\":{\"x\":-1,\"y\":[[],{}]},\"z\":\"long string value here\"}";

    (void) state;
    json_get_alloc_funcs(&om, &of);

    /* jansson makes its hash seed on the first object; not counted below */
    v = json_object();
    json_decref(v);

    for (k = 0; ; k++) {
        alloc_left = k;
        alloc_live = 0;
        json_set_alloc_funcs(failing_malloc, counting_free);

        v = ag_json_parse(text, sizeof(text) - 1, err, sizeof(err));
        if (v != NULL) {
            json_decref(v);
        }
        json_set_alloc_funcs(om, of);

        assert_int_equal(alloc_live, 0);
        if (v != NULL) {
            break;
        }
        assert_string_equal(err, "out of memory parsing JSON");
    }

    assert_true(k > 20);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_ok),
        cmocka_unit_test(refuse_duplicates),
        cmocka_unit_test(refuse_depth),
        cmocka_unit_test(refuse_bad_utf8_nul_trailing),
        cmocka_unit_test(depth_ignores_strings),
        cmocka_unit_test(fast_matches_reference),
        cmocka_unit_test(fast_matches_reference_long),
        cmocka_unit_test(error_offsets),
        cmocka_unit_test(fast_matches_reference_random),
        cmocka_unit_test(out_of_memory),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
