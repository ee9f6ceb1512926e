/*
 * The matchers of ag_match.h, each against a plain reference written here
 * from the documented semantics (docs/policy.md):
 *
 *   input: KIND PATTERN '\n' VALUE
 *
 *   g  glob: ag_glob_match against a memoised backtracking matcher; a glob
 *      matches its own instantiation ('*' as 'x'); a match starts with the
 *      glob's literal head; a literal glob matches exactly itself
 *   r  regex: a value the regex does not refuse starts with
 *      ag_regex_prefix (the policy's path index relies on it); it compiles
 *      iff ag_regex_check accepts it
 *   j  JSON pointer PATTERN into the JSON document VALUE, against RFC 6901
 *   q  ag_call_query for parameter PATTERN in the raw query VALUE, and
 *      ag_pct_decode, against a reference parser
 *   n  ag_decimal_parse, ag_has_dotdot, ag_duration_parse of VALUE
 *
 * Any other first byte picks one of them.
 */

#include "fuzz.h"
#include "ag_json.h"
#include "ag_match.h"


#define AG_REF_CELLS  (256 * 1024)

/* without libm, which the engine does not link */
#define ag_fabs(x)      ((x) < 0 ? -(x) : (x))
#define ag_finite(x)    ((x) - (x) == 0)


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


static int
ag_starts(const char *s, size_t len, const char *p, size_t plen)
{
    return len >= plen && (plen == 0 || memcmp(s, p, plen) == 0);
}


/* --- globs ------------------------------------------------------------------ */

enum { REF_LIT, REF_STAR, REF_DSTAR };

typedef struct {
    int          kind[AG_GLOB_MAX + 1];
    char         ch[AG_GLOB_MAX + 1];
    size_t       skip[AG_GLOB_MAX + 1];    /* 0: none */
    size_t       n;
    const char  *s;
    size_t       len;
    signed char *memo;                     /* (n + 1) * (len + 1): -1 unknown */
} ag_ref_glob_t;


static int
ag_ref_glob_at(ag_ref_glob_t *g, size_t pi, size_t si)
{
    int           r;
    signed char  *m = &g->memo[pi * (g->len + 1) + si];

    if (*m >= 0) {
        return *m;
    }

    if (pi == g->n) {
        r = (si == g->len);
    } else if (g->kind[pi] == REF_LIT) {
        r = (si < g->len && g->s[si] == g->ch[pi]
             && ag_ref_glob_at(g, pi + 1, si + 1))
            || (g->skip[pi] && ag_ref_glob_at(g, g->skip[pi], si));
    } else if (g->kind[pi] == REF_STAR) {
        r = ag_ref_glob_at(g, pi + 1, si)
            || (si < g->len && g->s[si] != '/' && ag_ref_glob_at(g, pi, si + 1));
    } else {
        r = ag_ref_glob_at(g, pi + 1, si)
            || (si < g->len && ag_ref_glob_at(g, pi, si + 1));
    }

    *m = (signed char) r;
    return r;
}


/* '*' is any run without '/', a run of two or more '*' any run at all; a
   "**" after '/' and before '/' or the end may also match nothing, the '/'
   before it included. */
static int
ag_ref_glob(const char *pat, size_t plen, const char *s, size_t len)
{
    int             r;
    size_t          i, j;
    ag_ref_glob_t  *g;

    g = calloc(1, sizeof(ag_ref_glob_t));
    if (g == NULL) {
        ag_fuzz_fail("out of memory");
    }

    for (i = 0; i < plen; i++) {
        if (pat[i] != '*') {
            g->kind[g->n] = REF_LIT;
            g->ch[g->n++] = pat[i];
        } else if (i + 1 < plen && pat[i + 1] == '*') {
            while (i + 1 < plen && pat[i + 1] == '*') {
                i++;
            }
            g->kind[g->n++] = REF_DSTAR;
        } else {
            g->kind[g->n++] = REF_STAR;
        }
    }
    for (j = 1; j < g->n; j++) {
        if (g->kind[j] == REF_DSTAR && g->kind[j - 1] == REF_LIT
            && g->ch[j - 1] == '/'
            && (j + 1 == g->n
                || (g->kind[j + 1] == REF_LIT && g->ch[j + 1] == '/')))
        {
            g->skip[j - 1] = j + 1;
        }
    }

    g->s = s;
    g->len = len;
    g->memo = malloc((g->n + 1) * (len + 1));
    if (g->memo == NULL) {
        ag_fuzz_fail("out of memory");
    }
    memset(g->memo, -1, (g->n + 1) * (len + 1));

    r = ag_ref_glob_at(g, 0, 0);

    free(g->memo);
    free(g);
    return r;
}


static void
ag_fuzz_glob(const char *pat, size_t plen, const char *val, size_t vlen)
{
    int          m;
    char         err[256], *inst;
    size_t       i, np;
    const char  *p;
    ag_pool_t   *pool;
    ag_glob_t   *g;

    pool = ag_pool_create();
    if (pool == NULL) {
        return;
    }

    g = ag_glob_compile(pool, pat, plen, err, sizeof(err));
    if (g == NULL) {
        ag_fuzz_assert(plen > AG_GLOB_MAX);
        ag_pool_destroy(pool);
        return;
    }
    ag_fuzz_assert(strlen(ag_glob_source(g)) == plen
                   || memchr(pat, '\0', plen) != NULL);

    m = ag_glob_match(g, val, vlen);

    if ((plen + 1) * (vlen + 1) <= AG_REF_CELLS) {
        if (m != ag_ref_glob(pat, plen, val, vlen)) {
            ag_fuzz_fail("glob \"%.*s\" on \"%.*s\": %d, reference says %d",
                         (int) plen, pat, (int) vlen, val, m, !m);
        }
    }

    /* a match starts with the literal head (the path index files rules
       under it): the bytes before the first '*', less a '/' that a '**'
       matching zero segments takes along */
    p = memchr(pat, '*', plen);
    np = p ? (size_t) (p - pat) : plen;
    if (p != NULL && np > 0 && pat[np - 1] == '/' && np + 1 < plen
        && pat[np + 1] == '*')
    {
        for (i = np; i < plen && pat[i] == '*'; i++) {
            /* void */
        }
        if (i == plen || pat[i] == '/') {
            np--;
        }
    }
    if (m) {
        ag_fuzz_assert(ag_starts(val, vlen, pat, np));
    }
    if (ag_glob_is_literal(g)) {
        ag_fuzz_assert(m == (vlen == plen && memcmp(val, pat, plen) == 0));
    }

    /* every glob matches itself with each '*' taken as 'x' */
    inst = ag_fuzz_strndup(pat, plen);
    for (i = 0; i < plen; i++) {
        inst[i] = (inst[i] == '*') ? 'x' : inst[i];
    }
    ag_fuzz_assert(ag_glob_match(g, inst, plen));
    free(inst);

    ag_pool_destroy(pool);
}


/* --- regexes -------------------------------------------------------------------- */

static int
ag_ascii(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}


static void
ag_fuzz_regex(const char *pat, size_t plen, const char *val, size_t vlen)
{
    char           err[256];
    size_t         np;
    ag_tri_t       t;
    const char    *p;
    ag_pool_t     *pool;
    ag_regex_t    *re;
    ag_scratch_t   sc;

    pool = ag_pool_create();
    if (pool == NULL) {
        return;
    }

    re = ag_regex_compile(pool, pat, plen, err, sizeof(err));
    ag_fuzz_assert((re != NULL)
                   == (ag_regex_check(pat, plen, err, sizeof(err)) == 0));
    if (re == NULL) {
        ag_pool_destroy(pool);
        return;
    }

    ag_scratch_init(&sc);
    t = ag_regex_match(re, val, vlen, &sc);
    np = ag_regex_prefix(re, &p);

    /* the path index leaves out a regex rule whose prefix an ASCII path does
       not start with: its test must then be FALSE, never TRUE or DOUBT */
    if (t != AG_FALSE && ag_ascii(val, vlen) && !ag_starts(val, vlen, p, np)) {
        ag_fuzz_fail("regex \"%.*s\" on \"%.*s\" is %s but its prefix is "
                     "\"%.*s\"", (int) plen, pat, (int) vlen, val,
                     ag_tri_name(t), (int) np, p);
    }

    /* the prefix itself, as a value, must not make the regex misbehave */
    (void) ag_regex_match(re, p, np, &sc);
    ag_fuzz_assert(!sc.failed);

    ag_scratch_free(&sc);
    ag_pool_destroy(pool);
}


/* --- JSON pointers ----------------------------------------------------------------- */

static json_t *
ag_ref_jptr(const char *ptr, size_t plen, json_t *doc)
{
    char        *tok;
    size_t       i, start, end, o, k;
    long         idx;

    if (plen == 0) {
        return doc;
    }
    tok = malloc(plen + 1);
    if (tok == NULL) {
        ag_fuzz_fail("out of memory");
    }

    for (start = 1; doc != NULL; start = end + 1) {
        for (end = start; end < plen && ptr[end] != '/'; end++) {
            /* void */
        }
        for (i = start, o = 0; i < end; i++) {
            if (ptr[i] == '~') {
                /* the compiler refused anything but ~0 and ~1 already */
                tok[o++] = ptr[++i] == '0' ? '~' : '/';
            } else {
                tok[o++] = ptr[i];
            }
        }

        if (json_is_object(doc)) {
            doc = json_object_getn(doc, tok, o);
        } else if (json_is_array(doc)) {
            idx = -1;
            if (o > 0 && o <= 9 && !(o > 1 && tok[0] == '0')) {
                for (k = 0, idx = 0; k < o; k++) {
                    if (tok[k] < '0' || tok[k] > '9') {
                        idx = -1;
                        break;
                    }
                    idx = idx * 10 + (tok[k] - '0');
                }
            }
            doc = (idx >= 0) ? json_array_get(doc, (size_t) idx) : NULL;
        } else {
            doc = NULL;
        }

        if (end >= plen) {
            break;
        }
    }

    free(tok);
    return doc;
}


static void
ag_fuzz_jptr(const char *pat, size_t plen, const char *val, size_t vlen)
{
    char        err[256];
    json_t     *doc, *got;
    ag_pool_t  *pool;
    ag_jptr_t  *ptr;

    pool = ag_pool_create();
    if (pool == NULL) {
        return;
    }

    ptr = ag_jptr_compile(pool, pat, plen, err, sizeof(err));
    doc = ag_json_parse(val, vlen, err, sizeof(err));

    if (ptr != NULL && doc != NULL) {
        got = ag_jptr_get(ptr, doc);
        ag_fuzz_assert(got == ag_ref_jptr(pat, plen, doc));
    }

    json_decref(doc);
    ag_pool_destroy(pool);
}


/* --- query parameters -------------------------------------------------------------------- */

static int
ag_ref_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/* application/x-www-form-urlencoded decoding; -1 on a bad escape */
static long
ag_ref_pct(const char *s, size_t len, char *out)
{
    size_t  i, o;

    for (i = 0, o = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] != '%') {
            out[o++] = s[i];
        } else if (i + 2 < len && ag_ref_hex((unsigned char) s[i + 1]) >= 0
                   && ag_ref_hex((unsigned char) s[i + 2]) >= 0)
        {
            out[o++] = (char) (ag_ref_hex((unsigned char) s[i + 1]) * 16
                               + ag_ref_hex((unsigned char) s[i + 2]));
            i += 2;
        } else {
            return -1;
        }
    }
    return (long) o;
}


/* 0 absent, 1 found (its value in out), 2 repeated, -1 bad encoding in
   some name or in this value */
static int
ag_ref_query(const char *q, size_t qlen, const char *name, size_t nlen,
    char *out, size_t *olen)
{
    int          found;
    long         n;
    char        *tmp;
    size_t       start, end, eq;
    const char  *val;
    size_t       vlen;

    tmp = malloc(qlen + 1);
    if (tmp == NULL) {
        ag_fuzz_fail("out of memory");
    }
    found = 0;
    val = NULL;
    vlen = 0;

    for (start = 0; start < qlen; start = end + 1) {
        for (end = start; end < qlen && q[end] != '&'; end++) {
            /* void */
        }
        if (end == start) {
            continue;
        }
        for (eq = start; eq < end && q[eq] != '='; eq++) {
            /* void */
        }
        n = ag_ref_pct(q + start, eq - start, tmp);
        if (n < 0) {
            free(tmp);
            return -1;
        }
        if ((size_t) n == nlen && (nlen == 0 || memcmp(tmp, name, nlen) == 0))
        {
            if (found++ == 0) {
                val = (eq < end) ? q + eq + 1 : q + end;
                vlen = (eq < end) ? end - eq - 1 : 0;
            }
        }
    }
    free(tmp);

    if (found != 1) {
        return found ? 2 : 0;
    }
    n = ag_ref_pct(val, vlen, out);
    if (n < 0) {
        return -1;
    }
    *olen = (size_t) n;
    return 1;
}


static void
ag_fuzz_query(const char *name, size_t nlen, const char *q, size_t qlen)
{
    int        r, want;
    char      *buf, *ref;
    size_t     olen, rlen;
    long       n;
    ag_str_t   v;
    ag_call_t  call;

    memset(&call, 0, sizeof(call));
    call.query.p = q;
    call.query.len = qlen;

    buf = malloc(qlen + 1);
    ref = malloc(qlen + 1);
    if (buf == NULL || ref == NULL) {
        ag_fuzz_fail("out of memory");
    }

    v.p = NULL;
    v.len = 0;
    rlen = 0;
    r = ag_call_query(&call, name, nlen, buf, &v);
    want = ag_ref_query(q, qlen, name, nlen, ref, &rlen);
    if (r != want) {
        ag_fuzz_fail("query \"%.*s\" parameter \"%.*s\": %d, reference says "
                     "%d", (int) qlen, q, (int) nlen, name, r, want);
    }
    if (r == 1) {
        ag_fuzz_assert(v.len == rlen && memcmp(v.p, ref, rlen) == 0);
    }

    n = ag_ref_pct(q, qlen, ref);
    r = ag_pct_decode(q, qlen, buf, &olen);
    ag_fuzz_assert((r == 0) == (n >= 0));
    if (r == 0) {
        ag_fuzz_assert(olen == (size_t) n && memcmp(buf, ref, olen) == 0);
    }

    free(buf);
    free(ref);
}


/* --- numbers, paths, durations ------------------------------------------------------------ */

static void
ag_fuzz_scalars(const char *s, size_t len)
{
    int          is_int, ok, dot, want, rc;
    char        *z;
    size_t       i, digits, intdigits, start;
    int64_t      iv, dur, unit;
    double       dv, ref;
    __int128     acc;

    /* ^-?[0-9]+(\.[0-9]+)?$ */
    i = (len > 0 && s[0] == '-');
    digits = 0;
    intdigits = 0;
    dot = 0;
    ok = 1;
    for (; i < len && ok; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            digits++;
            intdigits += !dot;
        } else if (s[i] == '.' && !dot && digits > 0) {
            dot = 1;
            digits = 0;
        } else {
            ok = 0;
        }
    }
    ok = ok && digits > 0;

    is_int = -1;
    iv = 0;
    dv = 0;
    rc = ag_decimal_parse(s, len, &is_int, &iv, &dv);

    /* only the syntax is accepted; a number too long to read exactly may
       be refused (and so doubted) */
    ag_fuzz_assert(rc == 0 ? ok
                   : (!ok || (dot ? intdigits + digits : digits) > 30));
    if (rc == 0) {
        z = ag_fuzz_strndup(s, len);
        ref = strtod(z, NULL);
        if (is_int) {
            ag_fuzz_assert(!dot && intdigits <= 18);
            ag_fuzz_assert(iv == strtoll(z, NULL, 10));
        } else if (dv != dv || (ag_finite(ref) && !ag_finite(dv))) {
            ag_fuzz_fail("decimal \"%.*s\" read as %.17g, strtod says "
                         "%.17g", (int) len, s, dv, ref);
        } else if (ag_finite(ref) && ag_fabs(ref) > 1e-300) {
            if (!(ag_fabs(dv - ref) <= ag_fabs(ref) * 1e-9)) {
                ag_fuzz_fail("decimal \"%.*s\" read as %.17g, strtod says "
                             "%.17g", (int) len, s, dv, ref);
            }
        }
        free(z);
    }

    /* a segment "..", split on '/' and '\' */
    want = 0;
    for (i = 0, start = 0; i <= len; i++) {
        if (i == len || s[i] == '/' || s[i] == '\\') {
            want |= (i - start == 2 && s[start] == '.' && s[start + 1] == '.');
            start = i + 1;
        }
    }
    ag_fuzz_assert(ag_has_dotdot(s, len) == want);

    /* ^[0-9]+[smhd]$, exact when it does not come near overflowing */
    dur = ag_duration_parse(s, len);
    unit = 0;
    if (len >= 2) {
        unit = s[len - 1] == 's' ? 1 : s[len - 1] == 'm' ? 60
               : s[len - 1] == 'h' ? 3600 : s[len - 1] == 'd' ? 86400 : 0;
    }
    ok = (unit != 0);
    acc = 0;
    for (i = 0; ok && i + 1 < len; i++) {
        ok = (s[i] >= '0' && s[i] <= '9');
        if (ok && acc < ((__int128) 1 << 100)) {
            acc = acc * 10 + (s[i] - '0');
        }
    }
    if (dur >= 0) {
        ag_fuzz_assert(ok && acc * unit == dur);
    } else {
        ag_fuzz_assert(!ok || len > 20 || acc * unit > INT64_MAX / 16);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          kind;
    size_t       plen, vlen;
    const char  *pat, *val;

    if (size < 1) {
        return 0;
    }

    kind = data[0];
    if (strchr("grjqn", kind) == NULL || kind == '\0') {
        kind = "grjqn"[data[0] % 5];
    }

    pat = (const char *) data + 1;
    ag_fuzz_split(pat, size - 1, '\n', &plen, &val, &vlen);

    switch (kind) {
    case 'g':
        ag_fuzz_glob(pat, plen, val, vlen);
        break;
    case 'r':
        ag_fuzz_regex(pat, plen, val, vlen);
        break;
    case 'j':
        ag_fuzz_jptr(pat, plen, val, vlen);
        break;
    case 'q':
        ag_fuzz_query(pat, plen, val, vlen);
        break;
    default:
        ag_fuzz_scalars(val, vlen);
        ag_fuzz_scalars(pat, plen);
        break;
    }

    return 0;
}
