/*
 * ag_secrets_scan, ag_strip_query and ag_strip_header on fuzzed calls.
 *
 *   input: FLAGS HEADERS 0 QUERY 0 BODY
 *
 * FLAGS picks the tool (none, or one of three with different allow_secrets
 * and strip lists) and max (1 to 16). HEADERS are "Name:value" lines. In
 * all three parts, 0xff k stands for fake token k (the built-in patterns'
 * and the fixture policy's, assembled at start-up from repeated characters:
 * no token is stored in the corpus), and 0xff 0xff for a 0xff byte; the 0
 * of 0xff 0 is a token's k, not the end of a part.
 *
 * Oracles, against references written here:
 *
 * - the scan equals a reference scan, finding for finding (pattern, sha8,
 *   place, in order): each place's texts, which are the headers' "Name:
 *   value" lines (the gateway's own headers left out), the query raw and
 *   percent-decoded, the body raw, JSON-unescaped once and twice and then
 *   percent-decoded (each decoded text only when decoding changed
 *   something), decoded by decoders of its own; in each text each pattern
 *   the tool does not allow, compiled alone and run by PCRE2's interpreter
 *   (the scanner's are JIT-compiled), every match leftmost first; a
 *   finding's sha8 the SHA-256 prefix of its match; distinct, at most max.
 *   So every finding is a substring of its place's text the pattern
 *   matches, and every pattern that matches is found unless max is
 *   reached;
 * - the scan never fails on these patterns;
 * - ag_strip_query equals a reference: the kept parameters in order, byte
 *   for byte, none of them named like a stripped one (names percent-decoded,
 *   case-insensitive); removed[] the stripped names as sent; nothing
 *   stripped leaves the query unchanged. ag_strip_header likewise.
 */

#define PCRE2_CODE_UNIT_WIDTH  8

#include <pcre2.h>

#include "fuzz.h"
#include "ag_secrets.h"


#define AG_FZ_TEXT_MAX    (64 * 1024)
#define AG_FZ_HEADERS     32
#define AG_FZ_NTOOLS      3
#define AG_FZ_PAT_MAX     32
#define AG_FZ_TEXTS       4

static const char  ag_fz_policy[] =
    "{\"agentgov\": 1,"
    " \"secret_patterns\": {\"acme\": \"acme_[a-z0-9]{8}\","
    "   \"twice\": \"(zq[0-9])\\\\1\", \"utf\": \"cl\xc3\xa9-[0-9]{4}\","
    "   \"after\": \"(*UCP)tok:\\\\K\\\\w{6}\"},"
    " \"strip\": {\"headers\": [\"X-Corp-Key\"], \"query\": [\"sig\"]},"
    " \"tools\": {"
    "   \"t0\": {},"
    "   \"t1\": {\"allow_secrets\": [\"jwt\", \"github_token\", \"acme\"],"
    "          \"strip\": {\"headers\": [\"X-Tool-Key\"],"
    "                    \"query\": [\"x-tool\", \"p%\"]}},"
    "   \"t2\": {\"allow_secrets\": [\"aws_access_key\", \"twice\","
    "                              \"openai_key\", \"after\"]}}}";

/* what the reference strips besides the policy's and the tool's lists */
static const char *const  ag_fz_strip_hs[] = {
    "Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "Api-Key",
    "X-Auth-Token", "X-Corp-Key", NULL
};
static const char *const  ag_fz_strip_qs[] = {
    "api_key", "apikey", "access_token", "token", "key", "sig", NULL
};
static const char *const  ag_fz_gateway_h[] = {
    "Agent-Authorization", "Agent-Task", "Agent-Approval", NULL
};

typedef struct {
    ag_policy_t      *policy;
    ag_secrets_t     *secrets;
    const ag_tool_t  *tools[AG_FZ_NTOOLS];
    pcre2_code       *code[AG_FZ_PAT_MAX];     /* each pattern alone */
    const char       *name[AG_FZ_PAT_MAX];
    size_t            npat;
    char             *tok[32];
    size_t            ntok;
} ag_fz_t;

static ag_fz_t  fz;


static char *
ag_fz_repeat(const char *a, const char *b, int c, size_t n)
{
    size_t  la = strlen(a), lb = strlen(b);
    char   *s = malloc(la + lb + n + 1);

    if (s == NULL) {
        ag_fuzz_fail("out of memory");
    }
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memset(s + la + lb, c, n);
    s[la + lb + n] = '\0';
    return s;
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int          rc;
    char         err[256];
    size_t       i;
    PCRE2_SIZE   off;
    const char  *src;

    (void) argc;
    (void) argv;

    fz.policy = ag_policy_load(ag_fz_policy, sizeof(ag_fz_policy) - 1, err,
                               sizeof(err));
    if (fz.policy == NULL) {
        ag_fuzz_fail("fixture policy: %s", err);
    }
    fz.secrets = ag_secrets_new(fz.policy, err, sizeof(err));
    if (fz.secrets == NULL) {
        ag_fuzz_fail("ag_secrets_new: %s", err);
    }
    for (i = 0; i < AG_FZ_NTOOLS; i++) {
        char  name[4] = { 't', (char) ('0' + i), '\0', '\0' };

        fz.tools[i] = ag_policy_tool(fz.policy, name, 2);
        if (fz.tools[i] == NULL) {
            ag_fuzz_fail("fixture tool %s", name);
        }
    }

    fz.npat = ag_secrets_count(fz.secrets);
    if (fz.npat > AG_FZ_PAT_MAX) {
        ag_fuzz_fail("too many patterns");
    }
    for (i = 0; i < fz.npat; i++) {
        fz.name[i] = ag_secrets_pattern(fz.secrets, i, &src);
        /* not JIT-compiled: the reference runs PCRE2's interpreter */
        fz.code[i] = pcre2_compile((PCRE2_SPTR) src, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &rc,
                                   &off, NULL);
        if (fz.code[i] == NULL) {
            ag_fuzz_fail("pattern %s does not compile alone", fz.name[i]);
        }
    }

    /* fake tokens: split prefixes and runs of one character */
    fz.tok[fz.ntok++] = ag_fz_repeat("AK", "IA", 'A', 16);
    fz.tok[fz.ntok++] = ag_fz_repeat("aws_secret", "_access_key=", 'A', 40);
    fz.tok[fz.ntok++] = ag_fz_repeat("gh", "p_", 'A', 36);
    fz.tok[fz.ntok++] = ag_fz_repeat("gl", "pat-", 'A', 20);
    fz.tok[fz.ntok++] = ag_fz_repeat("xo", "xb-1111111111-", 'A', 12);
    fz.tok[fz.ntok++] = ag_fz_repeat("sk", "_live_", 'A', 24);
    fz.tok[fz.ntok++] = ag_fz_repeat("sk", "-proj-", 'A', 24);
    fz.tok[fz.ntok++] = ag_fz_repeat("AI", "za", 'A', 35);
    fz.tok[fz.ntok++] = ag_fz_repeat("-----BEGIN ", "RSA PRIVATE KEY-----",
                                     'x', 0);
    fz.tok[fz.ntok++] = ag_fz_repeat("ey", "JAAAAAAA.eyJAAAAAAA.", 'A', 12);
    fz.tok[fz.ntok++] = ag_fz_repeat("github", "_pat_", 'A', 82);
    fz.tok[fz.ntok++] = ag_fz_repeat("SecretAccess", "Key\": \"", 'A', 40);
    fz.tok[fz.ntok++] = ag_fz_repeat("AS", "IA", 'B', 16);
    fz.tok[fz.ntok++] = ag_fz_repeat("acme_", "", 'a', 8);
    fz.tok[fz.ntok++] = ag_fz_repeat("zq1", "zq1", 'x', 0);
    fz.tok[fz.ntok++] = ag_fz_repeat("cl\xc3\xa9-", "", '1', 4);
    fz.tok[fz.ntok++] = ag_fz_repeat("tok:\xc3\xa9", "", 'b', 5);
    fz.tok[fz.ntok++] = ag_fz_repeat("\\u0041K", "IA", 'A', 16);
    fz.tok[fz.ntok++] = ag_fz_repeat("%67", "hp_", 'A', 36);

    return 0;
}


/* --- references ------------------------------------------------------------- */

static int
ag_fz_hex(unsigned char c)
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


/* percent-decoding, '+' as space, bad escapes kept; returns the changes */
static size_t
ag_fz_pct(const char *in, size_t len, char *out, size_t *olen)
{
    size_t  i, o = 0, n = 0;

    for (i = 0; i < len; i++) {
        if (in[i] == '+') {
            out[o++] = ' ';
            n++;
        } else if (in[i] == '%' && i + 2 < len
                   && ag_fz_hex((unsigned char) in[i + 1]) >= 0
                   && ag_fz_hex((unsigned char) in[i + 2]) >= 0)
        {
            out[o++] = (char) (ag_fz_hex((unsigned char) in[i + 1]) * 16
                               + ag_fz_hex((unsigned char) in[i + 2]));
            i += 2;
            n++;
        } else {
            out[o++] = in[i];
        }
    }
    *olen = o;
    return n;
}


static long
ag_fz_u4(const char *in, size_t len, size_t i)
{
    long    v = 0;
    size_t  k;

    if (i + 6 > len || in[i] != '\\' || in[i + 1] != 'u') {
        return -1;
    }
    for (k = 2; k < 6; k++) {
        if (ag_fz_hex((unsigned char) in[i + k]) < 0) {
            return -1;
        }
        v = v * 16 + ag_fz_hex((unsigned char) in[i + k]);
    }
    return v;
}


/* JSON escapes anywhere; a lone surrogate or unknown escape kept */
static size_t
ag_fz_json(const char *in, size_t len, char *out, size_t *olen)
{
    static const char  from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";

    long         hi, lo, cp;
    size_t       i = 0, o = 0, n = 0;
    const char  *e;

    while (i < len) {
        if (in[i] == '\\' && i + 1 < len && in[i + 1] != '\0'
            && (e = strchr(from, in[i + 1])) != NULL)
        {
            out[o++] = to[e - from];
            i += 2;
            n++;
            continue;
        }

        hi = ag_fz_u4(in, len, i);
        cp = -1;
        if (hi >= 0 && (hi < 0xd800 || hi > 0xdfff)) {
            cp = hi;
            i += 6;
        } else if (hi >= 0xd800 && hi <= 0xdbff) {
            lo = ag_fz_u4(in, len, i + 6);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + (hi - 0xd800) * 0x400 + (lo - 0xdc00);
                i += 12;
            }
        }

        if (cp < 0) {
            out[o++] = in[i++];
            continue;
        }

        n++;
        if (cp < 0x80) {
            out[o++] = (char) cp;
        } else if (cp < 0x800) {
            out[o++] = (char) (0xc0 | (cp >> 6));
            out[o++] = (char) (0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[o++] = (char) (0xe0 | (cp >> 12));
            out[o++] = (char) (0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (char) (0x80 | (cp & 0x3f));
        } else {
            out[o++] = (char) (0xf0 | (cp >> 18));
            out[o++] = (char) (0x80 | ((cp >> 12) & 0x3f));
            out[o++] = (char) (0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (char) (0x80 | (cp & 0x3f));
        }
    }
    *olen = o;
    return n;
}


static int
ag_fz_caseeq(const char *s, size_t len, const char *lit)
{
    size_t  i;

    if (strlen(lit) != len) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        unsigned char  a = (unsigned char) s[i], b = (unsigned char) lit[i];

        if (a >= 'A' && a <= 'Z') {
            a = (unsigned char) (a + 32);
        }
        if (b >= 'A' && b <= 'Z') {
            b = (unsigned char) (b + 32);
        }
        if (a != b) {
            return 0;
        }
    }
    return 1;
}


static int
ag_fz_in(const char *s, size_t len, const char *const *list, size_t n)
{
    size_t  i;

    for (i = 0; list != NULL && (n == (size_t) -1 ? list[i] != NULL : i < n);
         i++)
    {
        if (ag_fz_caseeq(s, len, list[i])) {
            return 1;
        }
    }
    return 0;
}


/* --- the texts ---------------------------------------------------------------- */

typedef struct {
    char    *p[AG_FZ_TEXTS];
    size_t   len[AG_FZ_TEXTS];
    size_t   n;
} ag_fz_texts_t;


static char *
ag_fz_add(ag_fz_texts_t *t, size_t cap)
{
    char  *p = malloc(cap ? cap : 1);

    if (p == NULL) {
        ag_fuzz_fail("out of memory");
    }
    t->p[t->n] = p;
    t->len[t->n] = 0;
    return p;
}


static void
ag_fz_texts_free(ag_fz_texts_t *t)
{
    size_t  i;

    for (i = 0; i < t->n; i++) {
        free(t->p[i]);
    }
    t->n = 0;
}


static void
ag_fz_query_texts(const char *q, size_t len, ag_fz_texts_t *t)
{
    char  *p = ag_fz_add(t, len);

    memcpy(p, q, len);
    t->len[t->n++] = len;

    p = ag_fz_add(t, len);
    if (ag_fz_pct(q, len, p, &t->len[t->n]) != 0) {
        t->n++;
    } else {
        free(p);
    }
}


static void
ag_fz_body_texts(const char *b, size_t len, ag_fz_texts_t *t)
{
    int     round;
    char   *p;
    size_t  cur;

    p = ag_fz_add(t, len);
    memcpy(p, b, len);
    t->len[t->n++] = len;
    cur = 0;

    for (round = 0; round < 2; round++) {
        if (memchr(t->p[cur], '\\', t->len[cur]) == NULL) {
            break;
        }
        p = ag_fz_add(t, t->len[cur]);
        if (ag_fz_json(t->p[cur], t->len[cur], p, &t->len[t->n]) == 0) {
            free(p);
            break;
        }
        cur = t->n++;
    }

    if (memchr(t->p[cur], '%', t->len[cur]) == NULL
        && memchr(t->p[cur], '+', t->len[cur]) == NULL)
    {
        return;
    }
    p = ag_fz_add(t, t->len[cur]);
    if (ag_fz_pct(t->p[cur], t->len[cur], p, &t->len[t->n]) != 0) {
        t->n++;
    } else {
        free(p);
    }
}


/* --- oracles -------------------------------------------------------------- */

static void
ag_fz_sha8(const char *p, size_t len, char out[9])
{
    static const char  digits[] = "0123456789abcdef";
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       n;
    int                i;

    if (EVP_Digest(p, len, md, &n, EVP_sha256(), NULL) != 1) {
        ag_fuzz_fail("SHA-256");
    }
    for (i = 0; i < 4; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0x0f];
    }
    out[8] = '\0';
}


static int
ag_fz_allowed(const ag_tool_t *tool, const char *name)
{
    size_t  j;

    for (j = 0; tool != NULL && j < tool->nallow_secrets; j++) {
        if (strcmp(tool->allow_secrets[j], name) == 0) {
            return 1;
        }
    }
    return 0;
}


typedef struct {
    size_t       pat;
    char         sha8[9];
    const char  *where;
} ag_fz_finding_t;


/*
 * The findings the scan must give: each text of each place in order, each
 * pattern the tool does not allow in order, each search going on where the
 * last match ended, distinct, at most max. The patterns run here compiled
 * without JIT (the scanner's are JIT-compiled).
 */
static size_t
ag_fz_reference(const ag_tool_t *tool, ag_fz_texts_t *t, size_t max,
    ag_fz_finding_t *r)
{
    int                rc;
    char               sha8[9];
    size_t             w, k, i, j, n, start, m0, m1;
    PCRE2_SIZE        *ov;
    pcre2_match_data  *md;
    static const char *const  where[3] = { "header", "query", "body" };

    md = pcre2_match_data_create(1, NULL);
    if (md == NULL) {
        ag_fuzz_fail("out of memory");
    }

    n = 0;
    for (w = 0; w < 3; w++) {
        for (k = 0; k < t[w].n; k++) {
            for (i = 0; i < fz.npat; i++) {
                if (ag_fz_allowed(tool, fz.name[i])) {
                    continue;
                }
                for (start = 0; start < t[w].len[k]; ) {
                    rc = pcre2_match(fz.code[i], (PCRE2_SPTR) t[w].p[k],
                                     t[w].len[k], start, PCRE2_NOTEMPTY, md,
                                     NULL);
                    if (rc == PCRE2_ERROR_NOMATCH) {
                        break;
                    }
                    if (rc < 0) {
                        ag_fuzz_fail("reference match of %s: %d", fz.name[i],
                                     rc);
                    }
                    ov = pcre2_get_ovector_pointer(md);
                    m0 = ov[0] <= ov[1] ? ov[0] : ov[1];
                    m1 = ov[1];
                    ag_fz_sha8(t[w].p[k] + m0, m1 - m0, sha8);

                    for (j = 0; j < n; j++) {
                        if (r[j].pat == i && strcmp(r[j].sha8, sha8) == 0) {
                            break;
                        }
                    }
                    if (j == n) {
                        r[n].pat = i;
                        memcpy(r[n].sha8, sha8, 9);
                        r[n].where = where[w];
                        if (++n == max) {
                            goto done;
                        }
                    }
                    start = m1 > start ? m1 : start + 1;
                }
            }
        }
    }

done:
    pcre2_match_data_free(md);
    return n;
}


static void
ag_fz_check_scan(const ag_tool_t *tool, const ag_call_t *call,
    const char *body, size_t blen, size_t max)
{
    int              n;
    char             err[256], *lines;
    size_t           i, k, nref;
    ag_finding_t     f[AG_SECRETS_FINDINGS_MAX];
    ag_fz_texts_t    t[3];
    ag_fz_finding_t  r[AG_SECRETS_FINDINGS_MAX];

    n = ag_secrets_scan(fz.secrets, tool, call, body, blen, f, max, err,
                        sizeof(err));
    if (n < 0) {
        ag_fuzz_fail("scan failed: %s", err);
    }

    /* the texts, by place */
    memset(t, 0, sizeof(t));
    lines = ag_fz_add(&t[0], 3 * AG_FZ_HEADERS + AG_FZ_TEXT_MAX);
    for (i = 0, k = 0; i < call->nheaders; i++) {
        const ag_header_t  *h = &call->headers[i];

        if (ag_fz_in(h->name.p, h->name.len, ag_fz_gateway_h, (size_t) -1)) {
            continue;
        }
        memcpy(lines + k, h->name.p, h->name.len);
        k += h->name.len;
        memcpy(lines + k, ": ", 2);
        k += 2;
        memcpy(lines + k, h->value.p, h->value.len);
        k += h->value.len;
        lines[k++] = '\n';
    }
    t[0].len[t[0].n++] = k;
    ag_fz_query_texts(call->query.p, call->query.len, &t[1]);
    ag_fz_body_texts(body, blen, &t[2]);

    nref = ag_fz_reference(tool, t, max, r);

    for (i = 0; i < (size_t) n || i < nref; i++) {
        if (ag_fuzz_debug() && i < (size_t) n) {
            fprintf(stderr, "finding %s %s in %s\n", f[i].pattern, f[i].sha8,
                    f[i].where);
        }
        if (i >= (size_t) n || i >= nref
            || strcmp(f[i].pattern, fz.name[r[i].pat]) != 0
            || strcmp(f[i].sha8, r[i].sha8) != 0
            || strcmp(f[i].where, r[i].where) != 0)
        {
            ag_fuzz_fail("finding %zu: %s %s in %s; reference: %s %s in %s",
                         i, i < (size_t) n ? f[i].pattern : "-",
                         i < (size_t) n ? f[i].sha8 : "-",
                         i < (size_t) n ? f[i].where : "-",
                         i < nref ? fz.name[r[i].pat] : "-",
                         i < nref ? r[i].sha8 : "-",
                         i < nref ? r[i].where : "-");
        }
    }

    for (i = 0; i < 3; i++) {
        ag_fz_texts_free(&t[i]);
    }
}


static int
ag_fz_strip_q(const ag_tool_t *tool, const char *name, size_t len)
{
    char    dec[AG_FZ_TEXT_MAX];
    size_t  dlen;

    (void) ag_fz_pct(name, len, dec, &dlen);
    return ag_fz_in(dec, dlen, ag_fz_strip_qs, (size_t) -1)
           || (tool != NULL && ag_fz_in(dec, dlen, tool->strip_query,
                                        tool->nstrip_query));
}


static void
ag_fz_check_strip(const ag_tool_t *tool, const ag_call_t *call)
{
    char         *out, *ref;
    size_t        i, n, olen, rlen, nrm, plen, nlen, kept;
    ag_str_t      removed[4];
    const char   *q = call->query.p, *param, *amp, *eq, *end;

    for (i = 0; i < call->nheaders; i++) {
        const ag_header_t  *h = &call->headers[i];
        int  want = ag_fz_in(h->name.p, h->name.len, ag_fz_strip_hs,
                             (size_t) -1)
                    || (tool != NULL
                        && ag_fz_in(h->name.p, h->name.len,
                                    tool->strip_headers,
                                    tool->nstrip_headers));

        if (ag_strip_header(fz.policy, tool, h->name.p, h->name.len) != want) {
            ag_fuzz_fail("ag_strip_header \"%.*s\" is not %d",
                         (int) h->name.len, h->name.p, want);
        }
    }

    out = malloc(call->query.len + 1);
    ref = malloc(call->query.len + 1);
    if (out == NULL || ref == NULL) {
        ag_fuzz_fail("out of memory");
    }

    n = ag_strip_query(fz.policy, tool, q, call->query.len, out, &olen,
                       removed, 4);

    /* the reference: split at every '&' */
    rlen = 0;
    nrm = 0;
    kept = 0;
    end = q + call->query.len;
    for (param = q; call->query.len != 0; param = amp + 1) {
        amp = memchr(param, '&', (size_t) (end - param));
        plen = (size_t) ((amp != NULL ? amp : end) - param);
        eq = memchr(param, '=', plen);
        nlen = eq != NULL ? (size_t) (eq - param) : plen;

        if (nlen != 0 && ag_fz_strip_q(tool, param, nlen)) {
            if (nrm < 4 && (removed[nrm].p != param
                            || removed[nrm].len != nlen))
            {
                ag_fuzz_fail("removed[%zu] is not \"%.*s\"", nrm, (int) nlen,
                             param);
            }
            nrm++;
        } else {
            if (kept++ != 0) {
                ref[rlen++] = '&';
            }
            memcpy(ref + rlen, param, plen);
            rlen += plen;
        }
        if (amp == NULL) {
            break;
        }
    }

    if (n != nrm || olen != rlen || (rlen && memcmp(out, ref, rlen) != 0)) {
        ag_fuzz_fail("ag_strip_query: %zu removed, \"%.*s\"; reference %zu, "
                     "\"%.*s\"", n, (int) olen, out, nrm, (int) rlen, ref);
    }
    if (nrm == 0 && (olen != call->query.len
                     || (olen && memcmp(out, q, olen) != 0)))
    {
        ag_fuzz_fail("nothing stripped, but the query changed");
    }

    free(out);
    free(ref);
}


/* --- the input ------------------------------------------------------------------ */

/* The length of a part: up to the first 0 byte that is not a token's k. */
static size_t
ag_fz_part(const uint8_t *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] == 0xff && i + 1 < len) {
            i++;
        } else if (p[i] == 0) {
            break;
        }
    }
    return i;
}


/* Expands 0xff k into fake token k; NULL when it grows too large. */
static char *
ag_fz_expand(const uint8_t *p, size_t len, size_t *olen)
{
    char    *out = malloc(AG_FZ_TEXT_MAX);
    size_t   i, o = 0, tl;

    if (out == NULL) {
        ag_fuzz_fail("out of memory");
    }
    for (i = 0; i < len; i++) {
        if (p[i] == 0xff && i + 1 < len && p[i + 1] != 0xff) {
            const char  *t = fz.tok[p[++i] % fz.ntok];

            tl = strlen(t);
            if (o + tl > AG_FZ_TEXT_MAX) {
                free(out);
                return NULL;
            }
            memcpy(out + o, t, tl);
            o += tl;
            continue;
        }
        if (p[i] == 0xff && i + 1 < len) {
            i++;
        }
        if (o == AG_FZ_TEXT_MAX) {
            free(out);
            return NULL;
        }
        out[o++] = (char) p[i];
    }
    *olen = o;
    return out;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char              *hb, *qb, *bb, *line, *next, *colon;
    size_t             hlen, qlen, blen, n, rest, max;
    const char        *tail, *tail2;
    ag_call_t          call;
    ag_header_t        hdrs[AG_FZ_HEADERS];
    const ag_tool_t   *tool;

    if (size < 1) {
        return 0;
    }

    tool = (data[0] & 3) == 0 ? NULL : fz.tools[(data[0] & 3) - 1];
    max = 1 + (data[0] >> 2) % AG_SECRETS_FINDINGS_MAX;

    n = ag_fz_part(data + 1, size - 1);
    hb = ag_fz_expand(data + 1, n, &hlen);
    tail = (const char *) data + 1 + n + (n < size - 1);
    rest = size - 1 - (size_t) (tail - ((const char *) data + 1));
    n = ag_fz_part((const uint8_t *) tail, rest);
    qb = ag_fz_expand((const uint8_t *) tail, n, &qlen);
    tail2 = tail + n + (n < rest);
    bb = ag_fz_expand((const uint8_t *) tail2,
                      rest - (size_t) (tail2 - tail), &blen);

    if (hb == NULL || qb == NULL || bb == NULL) {
        free(hb);
        free(qb);
        free(bb);
        return 0;
    }

    memset(&call, 0, sizeof(call));
    call.headers = hdrs;
    for (line = hb; hlen != 0 && line != NULL; line = next) {
        size_t  llen;

        next = memchr(line, '\n', (size_t) (hb + hlen - line));
        llen = (size_t) ((next != NULL ? next : hb + hlen) - line);
        if (next != NULL) {
            next++;
        }
        if (call.nheaders == AG_FZ_HEADERS) {
            break;
        }
        colon = memchr(line, ':', llen);
        hdrs[call.nheaders].name.p = line;
        hdrs[call.nheaders].name.len = colon ? (size_t) (colon - line) : llen;
        hdrs[call.nheaders].value.p = colon ? colon + 1 : line + llen;
        hdrs[call.nheaders].value.len = colon
                                        ? llen - (size_t) (colon - line) - 1
                                        : 0;
        call.nheaders++;
        if (next == hb + hlen) {
            break;
        }
    }
    call.query.p = qb;
    call.query.len = qlen;

    ag_fz_check_scan(tool, &call, bb, blen, max);
    ag_fz_check_strip(tool, &call);

    free(hb);
    free(qb);
    free(bb);
    return 0;
}
