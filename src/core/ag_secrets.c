/*
 * Stripping lists and the secret scan (SPEC section 7).
 *
 * Patterns are compiled with PCRE2_UTF | PCRE2_MATCH_INVALID_UTF: the
 * policy's were validated in UTF mode, and an agent's body need not be
 * valid UTF-8 (invalid sequences simply never match). Built-in patterns
 * spell letters' cases out ([kK]) instead of (?i): in UTF mode a caseless
 * k or s also matches U+212A or U+017F, and PCRE2 then gives up its fast
 * search for the first character.
 *
 * Every built-in pattern begins with a negative lookbehind for the
 * characters its token is made of, so that a match can only start where a
 * run of them starts. Without it a long run ("eyJeyJeyJ...", a base64
 * blob) would be a candidate at every byte and the scan quadratic; with it
 * the scan stays linear in the text, and a token's prefix inside a longer
 * word or blob is no finding.
 */

#define PCRE2_CODE_UNIT_WIDTH  8

#include <stdlib.h>
#include <string.h>
#include <pcre2.h>
#include <openssl/evp.h>

#include "ag_match.h"
#include "ag_secrets.h"
#include "ag_util.h"


#define AG_SECRETS_OPTIONS      (PCRE2_UTF | PCRE2_MATCH_INVALID_UTF)

/* JSON escapes are decoded this many times at most: a JSON document held
   in a JSON string (MCP arguments often are) needs two */
#define AG_SECRETS_JSON_ROUNDS  2

/* texts built for a scan (headers' lines, decoded query or body) up to
   this size are built on the stack */
#define AG_SECRETS_STACK_BUF    4096

/* token characters: a built-in match begins where a run of them begins */
#define AG_TOK   "(?<![A-Za-z0-9_-])"

/* the words of an AWS secret's name, in any case */
#define AG_AWS      "[aA][wW][sS]"
#define AG_SECRET   "[sS][eE][cC][rR][eE][tT]"
#define AG_ACCESS   "[aA][cC][cC][eE][sS][sS]"
#define AG_KEY      "[kK][eE][yY]"
#define AG_SEP      "[_. -]"


typedef struct {
    const char  *name;
    const char  *src;
} ag_secret_def_t;

/* The names are the policy loader's (ag_policy.c ag_builtin_secrets): a
   tool's "allow_secrets" names them. */
static const ag_secret_def_t  ag_secret_builtins[] = {

    { "aws_access_key",
      "(?<![A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}"
      "(?![A-Za-z0-9])" },

    /* a bare 40-character base64 string is too common to refuse: only
       after a name that says what it is; \K: the finding hashes the
       secret alone, whatever name and quotes came before it */
    { "aws_secret_key",
      "(?:" AG_SECRET AG_SEP "?" AG_ACCESS AG_SEP "?" AG_KEY
      "|(?<=" AG_AWS "|" AG_AWS "[_.-])" AG_SECRET "[_.-]?" AG_KEY ")"
      "[\\s\"'`:=>]{1,8}\\K[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])" },

    { "github_token",
      AG_TOK "(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})" },

    { "gitlab_token",
      AG_TOK "glpat-[A-Za-z0-9_-]{20}" },

    { "slack_token",
      AG_TOK "xox[abposr]-[A-Za-z0-9-]{10,}" },

    { "stripe_key",
      AG_TOK "[sr]k_live_[A-Za-z0-9]{20,}" },

    /* kebab-case words after "sk-" are not a key: a key has an upper-case
       letter or a digit somewhere */
    { "openai_key",
      AG_TOK "sk-(?=[a-z_-]*+[A-Z0-9])[A-Za-z0-9_-]{20,}" },

    { "google_api_key",
      AG_TOK "AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])" },

    { "private_key",
      "-----BEGIN (?:(?:(?:RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY"
      "|PGP PRIVATE KEY BLOCK)-----" },

    { "jwt",
      AG_TOK "eyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}\\."
      "[A-Za-z0-9_-]{10,}" }
};

#define AG_SECRETS_NBUILTIN  \
    (sizeof(ag_secret_builtins) / sizeof(ag_secret_builtins[0]))


/* the gateway's own headers: a tool never sees them, nothing to scan */
static const char *const  ag_gateway_headers[] = {
    "Agent-Authorization", "Agent-Task", "Agent-Approval", NULL
};

static const char *const  ag_strip_headers_builtin[] = {
    "Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "Api-Key",
    "X-Auth-Token", NULL
};

static const char *const  ag_strip_query_builtin[] = {
    "api_key", "apikey", "access_token", "token", "key", NULL
};


typedef struct {
    char        *name;
    char        *src;
    pcre2_code  *code;
    int          jit;
    uint32_t     minlen;    /* no shorter text can match it */
} ag_secret_pat_t;

struct ag_secrets_s {
    ag_secret_pat_t      *pat;
    size_t                npat;
    pcre2_match_context  *mctx;     /* the match limits */
};


typedef struct {
    const ag_secrets_t   *s;
    const ag_tool_t      *tool;
    pcre2_match_data     *md;
    ag_finding_t         *out;
    size_t                max;
    size_t                n;
    char                 *buf;      /* the work buffer: stack or malloc'd */
    size_t                bufsize;
    char                 *stack;
    char                 *err;
    size_t                errlen;
} ag_scan_t;


/* --- helpers --------------------------------------------------------------- */

static int
ag_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


/* [s, s + len) equals the NUL-terminated lit, ASCII case-insensitively; a
   NUL in s never matches the end of lit */
static int
ag_caseeq(const char *s, size_t len, const char *lit)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (lit[i] == '\0'
            || ag_lower((unsigned char) s[i])
               != ag_lower((unsigned char) lit[i]))
        {
            return 0;
        }
    }
    return lit[len] == '\0';
}


static int
ag_in_list(const char *s, size_t len, const char *const *list, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ag_caseeq(s, len, list[i])) {
            return 1;
        }
    }
    return 0;
}


static size_t
ag_list_len(const char *const *list)
{
    size_t  n;

    for (n = 0; list[n] != NULL; n++) { /* void */ }
    return n;
}


/*
 * Percent-decoding with '+' as space, as a form or query parser reads it;
 * an escape that is not two hex digits stays as it is. out may be in (the
 * output is never longer). Returns how many bytes were changed.
 */
static size_t
ag_pct_lenient(const char *in, size_t len, char *out, size_t *outlen)
{
    size_t       i, o, n, run;
    int          hi, lo;
    const char  *pct, *plus, *p;

    n = 0;
    pct = NULL;
    plus = NULL;

    for (i = 0, o = 0; i < len; ) {
        /* the bytes up to the next '%' or '+', at once; each memchr runs
           again only once what it found has been passed */
        if (pct != NULL && pct < in + i) {
            pct = NULL;
        }
        if (pct == NULL) {
            pct = memchr(in + i, '%', len - i);
            pct = pct != NULL ? pct : in + len;
        }
        if (plus != NULL && plus < in + i) {
            plus = NULL;
        }
        if (plus == NULL) {
            plus = memchr(in + i, '+', len - i);
            plus = plus != NULL ? plus : in + len;
        }
        p = pct < plus ? pct : plus;
        run = (size_t) (p - (in + i));
        if (run != 0) {
            if (out + o != in + i) {
                memmove(out + o, in + i, run);
            }
            o += run;
            i += run;
            continue;
        }

        if (in[i] == '+') {
            out[o++] = ' ';
            i++;
            n++;

        } else if (len - i > 2
                   && (hi = ag_hex_digit((unsigned char) in[i + 1])) >= 0
                   && (lo = ag_hex_digit((unsigned char) in[i + 2])) >= 0)
        {
            out[o++] = (char) (hi << 4 | lo);
            i += 3;
            n++;

        } else {
            out[o++] = in[i++];
        }
    }

    *outlen = o;
    return n;
}


static int
ag_hex4(const char *p, unsigned *v)
{
    int       i, d;
    unsigned  x;

    x = 0;
    for (i = 0; i < 4; i++) {
        if ((d = ag_hex_digit((unsigned char) p[i])) < 0) {
            return 0;
        }
        x = x << 4 | (unsigned) d;
    }
    *v = x;
    return 1;
}


static size_t
ag_utf8_put(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char) (0xc0 | cp >> 6);
        out[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char) (0xe0 | cp >> 12);
        out[1] = (char) (0x80 | (cp >> 6 & 0x3f));
        out[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char) (0xf0 | cp >> 18);
    out[1] = (char) (0x80 | (cp >> 12 & 0x3f));
    out[2] = (char) (0x80 | (cp >> 6 & 0x3f));
    out[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}


/*
 * JSON string escapes decoded wherever they are (outside a string they are
 * invalid JSON anyway): \" \\ \/ \b \f \n \r \t, \uXXXX as UTF-8, a
 * surrogate pair as one code point. A lone surrogate or an unknown escape
 * stays as it is. Every escape is at least as long as what it stands for,
 * so out may be in. Returns how many escapes were decoded.
 */
static size_t
ag_json_unescape(const char *in, size_t len, char *out, size_t *outlen)
{
    char         c;
    size_t       i, o, n, run;
    unsigned     cp, lo;
    const char  *p;

    n = 0;
    for (i = 0, o = 0; i < len; ) {
        /* the bytes up to the next backslash, at once */
        p = memchr(in + i, '\\', len - i);
        run = p != NULL ? (size_t) (p - (in + i)) : len - i;
        if (run != 0) {
            if (out + o != in + i) {
                memmove(out + o, in + i, run);
            }
            o += run;
            i += run;
            continue;
        }

        if (len - i < 2) {
            out[o++] = in[i++];
            continue;
        }

        switch (in[i + 1]) {
        case '"':  c = '"';  break;
        case '\\': c = '\\'; break;
        case '/':  c = '/';  break;
        case 'b':  c = '\b'; break;
        case 'f':  c = '\f'; break;
        case 'n':  c = '\n'; break;
        case 'r':  c = '\r'; break;
        case 't':  c = '\t'; break;

        case 'u':
            if (len - i < 6 || !ag_hex4(in + i + 2, &cp)
                || (cp >= 0xdc00 && cp <= 0xdfff))
            {
                goto literal;
            }

            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (len - i < 12 || in[i + 6] != '\\' || in[i + 7] != 'u'
                    || !ag_hex4(in + i + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
                {
                    goto literal;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }

            /* all of the escape has been read: writing at o <= i is safe */
            i += 6;
            o += ag_utf8_put(out + o, cp);
            n++;
            continue;

        default:
            goto literal;
        }

        out[o++] = c;
        i += 2;
        n++;
        continue;

    literal:
        /* the backslash as it is; what follows is read on its own */
        out[o++] = in[i++];
    }

    *outlen = o;
    return n;
}


static void
ag_pcre2_err(int rc, const char *what, char *err, size_t errlen)
{
    PCRE2_UCHAR  msg[160];

    if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0) {
        ag_errf(err, errlen, "%s: PCRE2 error %d", what, rc);
        return;
    }
    ag_errf(err, errlen, "%s: %s", what, (char *) msg);
}


/* --- compiling ------------------------------------------------------------- */

ag_secrets_t *
ag_secrets_new(const ag_policy_t *p, char *err, size_t errlen)
{
    int                  rc;
    size_t               i, npol, nall;
    PCRE2_SIZE           off;
    PCRE2_UCHAR          msg[160];
    const char          *name, *src;
    ag_secrets_t        *s;
    const char *const   *names, *const *regexes;

    npol = 0;
    names = NULL;
    regexes = NULL;
    if (p != NULL) {
        npol = ag_policy_secret_patterns(p, &names, &regexes);
    }

    s = calloc(1, sizeof(ag_secrets_t));
    if (s == NULL) {
        ag_errf(err, errlen, "out of memory");
        return NULL;
    }

    nall = AG_SECRETS_NBUILTIN + npol;
    s->pat = calloc(nall, sizeof(ag_secret_pat_t));
    if (s->pat == NULL) {
        goto nomem;
    }

    for (i = 0; i < nall; i++) {
        if (i < AG_SECRETS_NBUILTIN) {
            name = ag_secret_builtins[i].name;
            src = ag_secret_builtins[i].src;
        } else {
            name = names[i - AG_SECRETS_NBUILTIN];
            src = regexes[i - AG_SECRETS_NBUILTIN];
        }

        s->pat[i].name = strdup(name);
        s->pat[i].src = strdup(src);
        s->npat++;
        if (s->pat[i].name == NULL || s->pat[i].src == NULL) {
            goto nomem;
        }

        s->pat[i].code = pcre2_compile((PCRE2_SPTR) src, strlen(src),
                                       AG_SECRETS_OPTIONS, &rc, &off, NULL);
        if (s->pat[i].code == NULL) {
            if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0) {
                msg[0] = '\0';
            }
            ag_errf(err, errlen, "secret pattern \"%s\": %s at offset %zu",
                    name, (char *) msg, (size_t) off);
            goto failed;
        }

        /* JIT is an optimisation: without it pcre2_match interprets. With
           it, pcre2_jit_match skips checks that compile time has made */
        s->pat[i].jit = pcre2_jit_compile(s->pat[i].code, PCRE2_JIT_COMPLETE)
                        == 0;

        if (pcre2_pattern_info(s->pat[i].code, PCRE2_INFO_MINLENGTH,
                               &s->pat[i].minlen)
            != 0)
        {
            s->pat[i].minlen = 0;
        }
    }

    s->mctx = pcre2_match_context_create(NULL);
    if (s->mctx == NULL) {
        goto nomem;
    }
    pcre2_set_match_limit(s->mctx, AG_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(s->mctx, AG_REGEX_DEPTH_LIMIT);

    return s;

nomem:
    ag_errf(err, errlen, "out of memory");
failed:
    ag_secrets_free(s);
    return NULL;
}


void
ag_secrets_free(ag_secrets_t *s)
{
    size_t  i;

    if (s == NULL) {
        return;
    }

    for (i = 0; i < s->npat; i++) {
        pcre2_code_free(s->pat[i].code);
        free(s->pat[i].name);
        free(s->pat[i].src);
    }
    free(s->pat);
    pcre2_match_context_free(s->mctx);
    free(s);
}


size_t
ag_secrets_count(const ag_secrets_t *s)
{
    return s->npat;
}


const char *
ag_secrets_pattern(const ag_secrets_t *s, size_t i, const char **src)
{
    if (i >= s->npat) {
        return NULL;
    }
    if (src != NULL) {
        *src = s->pat[i].src;
    }
    return s->pat[i].name;
}


/* --- scanning -------------------------------------------------------------- */

static int
ag_allowed(const ag_secrets_t *s, const ag_tool_t *tool, size_t i)
{
    size_t  j;

    if (tool == NULL) {
        return 0;
    }
    for (j = 0; j < tool->nallow_secrets; j++) {
        if (strcmp(tool->allow_secrets[j], s->pat[i].name) == 0) {
            return 1;
        }
    }
    return 0;
}


/* 1 when the findings are full, 0 to go on, -1 on error */
static int
ag_scan_found(ag_scan_t *sc, size_t i, const char *m, size_t len,
    const char *where)
{
    size_t         j;
    unsigned int   mdlen;
    unsigned char  md[EVP_MAX_MD_SIZE];
    char           sha8[9];

    if (EVP_Digest(m, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        ag_errf(sc->err, sc->errlen, "SHA-256 failed");
        return -1;
    }

    ag_hex_encode(md, 4, sha8);
    sha8[8] = '\0';

    for (j = 0; j < sc->n; j++) {
        if (sc->out[j].pattern == sc->s->pat[i].name
            && memcmp(sc->out[j].sha8, sha8, 9) == 0)
        {
            return 0;
        }
    }

    sc->out[sc->n].pattern = sc->s->pat[i].name;
    memcpy(sc->out[sc->n].sha8, sha8, 9);
    sc->out[sc->n].where = where;
    sc->n++;

    return sc->n == sc->max;
}


/* Every match of pattern i in text, leftmost first, each search going on
   where the last match ended. */
static int
ag_scan_pattern(ag_scan_t *sc, size_t i, const char *text, size_t len,
    const char *where)
{
    int          rc;
    size_t       start, m0, m1;
    PCRE2_SIZE  *ov;

    /* most paths, queries and header values are shorter than any key */
    if (len < sc->s->pat[i].minlen) {
        return 0;
    }

    for (start = 0; start < len; ) {
        rc = sc->s->pat[i].jit
             ? pcre2_jit_match(sc->s->pat[i].code, (PCRE2_SPTR) text, len,
                               start, PCRE2_NOTEMPTY, sc->md, sc->s->mctx)
             : pcre2_match(sc->s->pat[i].code, (PCRE2_SPTR) text, len, start,
                           PCRE2_NOTEMPTY, sc->md, sc->s->mctx);

        if (rc == PCRE2_ERROR_NOMATCH) {
            return 0;
        }
        if (rc < 0) {
            /* a match or depth limit, JIT stack, memory: fail closed */
            ag_pcre2_err(rc, "secret scan", sc->err, sc->errlen);
            return -1;
        }

        ov = pcre2_get_ovector_pointer(sc->md);
        m0 = ov[0];
        m1 = ov[1];

        /* \K in a lookaround (if PCRE2 ever allows it) may put the start
           after the end */
        if (m0 > m1) {
            m0 = m1;
        }

        rc = ag_scan_found(sc, i, text + m0, m1 - m0, where);
        if (rc != 0) {
            return rc;
        }

        start = m1 > start ? m1 : start + 1;
    }

    return 0;
}


/*
 * One pass per pattern, not one alternation of them all: PCRE2 JIT looks
 * for a lone pattern's first character with a vectorised search, while an
 * alternation's start set (e s r g x A -) holds a quarter of the bytes of
 * English text and every branch is tried at each. On 64 KiB of JSON the
 * ten built-in patterns one after another take 20 us, their alternation
 * 185 us.
 */
static int
ag_scan_text(ag_scan_t *sc, const char *text, size_t len, const char *where)
{
    int     rc;
    size_t  i;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < sc->s->npat; i++) {
        if (ag_allowed(sc->s, sc->tool, i)) {
            continue;
        }
        rc = ag_scan_pattern(sc, i, text, len, where);
        if (rc != 0) {
            return rc;
        }
    }

    return 0;
}


static int
ag_gateway_header(const ag_str_t *name)
{
    return ag_in_list(name->p, name->len, ag_gateway_headers,
                      ag_list_len(ag_gateway_headers));
}


/* The work buffer, at least size bytes; its content is not kept. NULL
   with err when out of memory. */
static char *
ag_scan_buf(ag_scan_t *sc, size_t size)
{
    char  *p;

    if (size <= sc->bufsize) {
        return sc->buf;
    }

    p = malloc(size);
    if (p == NULL) {
        ag_errf(sc->err, sc->errlen, "secret scan: out of memory");
        return NULL;
    }
    if (sc->buf != sc->stack) {
        free(sc->buf);
    }
    sc->buf = p;
    sc->bufsize = size;
    return p;
}


/*
 * The headers as one text of "Name: value" lines: one pass per pattern for
 * all of them, and a name gives a value its context
 * (X-Aws-Secret-Access-Key: ...). A header value holds no line break (nginx
 * refuses one), so a line is a header.
 */
static int
ag_scan_headers(ag_scan_t *sc, const ag_call_t *call)
{
    char               *buf;
    size_t              i, n, need;
    const ag_header_t  *h;

    need = 0;
    for (i = 0; i < call->nheaders; i++) {
        h = &call->headers[i];
        /* "Name: value\n", without overflow whatever the lengths */
        n = SIZE_MAX - need;
        if (n < 3 || n - 3 < h->name.len || n - 3 - h->name.len < h->value.len)
        {
            ag_errf(sc->err, sc->errlen, "secret scan: headers too large");
            return -1;
        }
        need += h->name.len + 3 + h->value.len;
    }

    buf = ag_scan_buf(sc, need);
    if (buf == NULL) {
        return -1;
    }

    n = 0;
    for (i = 0; i < call->nheaders; i++) {
        h = &call->headers[i];
        if (ag_gateway_header(&h->name)) {
            continue;
        }

        if (h->name.len != 0) {
            memcpy(buf + n, h->name.p, h->name.len);
            n += h->name.len;
        }
        buf[n++] = ':';
        buf[n++] = ' ';
        if (h->value.len != 0) {
            memcpy(buf + n, h->value.p, h->value.len);
            n += h->value.len;
        }
        buf[n++] = '\n';
    }

    return ag_scan_text(sc, buf, n, "header");
}


static int
ag_has_pct(const char *p, size_t len)
{
    return memchr(p, '%', len) != NULL || memchr(p, '+', len) != NULL;
}


static int
ag_scan_query(ag_scan_t *sc, const char *q, size_t len)
{
    int     rc;
    char   *buf;
    size_t  n;

    rc = ag_scan_text(sc, q, len, "query");
    if (rc != 0 || !ag_has_pct(q, len)) {
        return rc;
    }

    buf = ag_scan_buf(sc, len);
    if (buf == NULL) {
        return -1;
    }
    if (ag_pct_lenient(q, len, buf, &n) == 0) {
        return 0;
    }
    return ag_scan_text(sc, buf, n, "query");
}


static int
ag_scan_body(ag_scan_t *sc, const char *body, size_t len)
{
    int          rc, round;
    char        *buf;
    size_t       blen;
    const char  *cur;

    rc = ag_scan_text(sc, body, len, "body");
    if (rc != 0) {
        return rc;
    }

    cur = body;
    blen = len;

    for (round = 0; round < AG_SECRETS_JSON_ROUNDS; round++) {
        if (memchr(cur, '\\', blen) == NULL) {
            break;
        }
        /* the first round decodes the body into the buffer, the second
           the buffer in place */
        buf = ag_scan_buf(sc, len);
        if (buf == NULL) {
            return -1;
        }
        if (ag_json_unescape(cur, blen, buf, &blen) == 0) {
            break;
        }
        cur = buf;
        rc = ag_scan_text(sc, buf, blen, "body");
        if (rc != 0) {
            return rc;
        }
    }

    /* a form body, or an encoded URL in a JSON string: percent-decoded
       after the JSON escapes, so that \u0025 41KIA... is caught too */
    if (!ag_has_pct(cur, blen)) {
        return 0;
    }
    buf = ag_scan_buf(sc, len);
    if (buf == NULL) {
        return -1;
    }
    if (ag_pct_lenient(cur, blen, buf, &blen) == 0) {
        return 0;
    }
    return ag_scan_text(sc, buf, blen, "body");
}


int
ag_secrets_scan(const ag_secrets_t *s, const ag_tool_t *tool,
    const ag_call_t *call, const char *body, size_t body_len,
    ag_finding_t *out, size_t max, char *err, size_t errlen)
{
    int        rc;
    char       stack[AG_SECRETS_STACK_BUF];
    ag_scan_t  sc;

    if (max == 0) {
        /* nowhere to say what was found: refuse rather than say clean */
        ag_errf(err, errlen, "secret scan: no room for findings");
        return -1;
    }

    memset(&sc, 0, sizeof(ag_scan_t));
    sc.s = s;
    sc.tool = tool;
    sc.out = out;
    sc.max = max;
    sc.err = err;
    sc.errlen = errlen;
    sc.stack = stack;
    sc.buf = stack;
    sc.bufsize = sizeof(stack);

    sc.md = pcre2_match_data_create(1, NULL);
    if (sc.md == NULL) {
        ag_errf(err, errlen, "secret scan: out of memory");
        return -1;
    }

    rc = ag_scan_headers(&sc, call);

    /* a key in the path (webhook URLs hold them) is still a key */
    if (rc == 0 && call->path.p != NULL && call->path.len != 0) {
        rc = ag_scan_text(&sc, call->path.p, call->path.len, "path");
    }

    if (rc == 0 && call->query.p != NULL && call->query.len != 0) {
        rc = ag_scan_query(&sc, call->query.p, call->query.len);
    }

    if (rc == 0 && body != NULL && body_len != 0) {
        rc = ag_scan_body(&sc, body, body_len);
    }

    pcre2_match_data_free(sc.md);
    if (sc.buf != sc.stack) {
        free(sc.buf);
    }

    return rc < 0 ? -1 : (int) sc.n;
}


/*
 * Overwrite every match of every pattern in text with '*', in place (the
 * hold preview an approver reads: a secret in the call is not shown to
 * people either). 0, or -1 when matching failed (the caller shows nothing).
 */
int
ag_secrets_redact(const ag_secrets_t *s, char *text, size_t len)
{
    int                  rc;
    size_t               i, start, m0, m1;
    PCRE2_SIZE          *ov;
    pcre2_match_data    *md;

    md = pcre2_match_data_create(1, NULL);
    if (md == NULL) {
        return -1;
    }

    rc = 0;

    for (i = 0; i < s->npat && rc == 0; i++) {
        for (start = 0; start < len; ) {
            rc = s->pat[i].jit
                 ? pcre2_jit_match(s->pat[i].code, (PCRE2_SPTR) text, len,
                                   start, PCRE2_NOTEMPTY, md, s->mctx)
                 : pcre2_match(s->pat[i].code, (PCRE2_SPTR) text, len, start,
                               PCRE2_NOTEMPTY, md, s->mctx);

            if (rc == PCRE2_ERROR_NOMATCH) {
                rc = 0;
                break;
            }

            if (rc < 0) {
                rc = -1;
                break;
            }

            rc = 0;
            ov = pcre2_get_ovector_pointer(md);
            m0 = ov[0] < ov[1] ? ov[0] : ov[1];
            m1 = ov[1];

            memset(text + m0, '*', m1 - m0);
            start = m1 > start ? m1 : start + 1;
        }
    }

    pcre2_match_data_free(md);

    return rc;
}


/* --- stripping ------------------------------------------------------------- */

int
ag_strip_header(const ag_policy_t *p, const ag_tool_t *tool,
    const char *name, size_t len)
{
    size_t              n;
    const char *const  *list;

    if (ag_in_list(name, len, ag_strip_headers_builtin,
                   ag_list_len(ag_strip_headers_builtin)))
    {
        return 1;
    }

    if (p != NULL) {
        n = ag_policy_strip_headers(p, &list);
        if (ag_in_list(name, len, list, n)) {
            return 1;
        }
    }

    return tool != NULL
           && ag_in_list(name, len, tool->strip_headers, tool->nstrip_headers);
}


/* A query parameter's name, percent-decoded with '+' as space, equals lit
   ASCII case-insensitively. */
static int
ag_qname_eq(const char *raw, size_t len, const char *lit)
{
    int     c, hi, lo;
    size_t  i, j;

    for (i = 0, j = 0; i < len; j++) {
        c = (unsigned char) raw[i];

        if (c == '+') {
            c = ' ';
            i++;

        } else if (c == '%' && len - i > 2
                   && (hi = ag_hex_digit((unsigned char) raw[i + 1])) >= 0
                   && (lo = ag_hex_digit((unsigned char) raw[i + 2])) >= 0)
        {
            c = hi << 4 | lo;
            i += 3;

        } else {
            i++;
        }

        if (lit[j] == '\0' || ag_lower(c) != ag_lower((unsigned char) lit[j])) {
            return 0;
        }
    }

    return lit[j] == '\0';
}


static int
ag_qname_in(const char *raw, size_t len, const char *const *list, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (ag_qname_eq(raw, len, list[i])) {
            return 1;
        }
    }
    return 0;
}


static int
ag_strip_qname(const ag_policy_t *p, const ag_tool_t *tool, const char *name,
    size_t len)
{
    size_t              n;
    const char *const  *list;

    if (ag_qname_in(name, len, ag_strip_query_builtin,
                    ag_list_len(ag_strip_query_builtin)))
    {
        return 1;
    }

    if (p != NULL) {
        n = ag_policy_strip_query(p, &list);
        if (ag_qname_in(name, len, list, n)) {
            return 1;
        }
    }

    return tool != NULL
           && ag_qname_in(name, len, tool->strip_query, tool->nstrip_query);
}


size_t
ag_strip_query(const ag_policy_t *p, const ag_tool_t *tool,
    const char *q, size_t len, char *out, size_t *outlen, ag_str_t *removed,
    size_t max)
{
    size_t       o, kept, nremoved, plen, nlen;
    const char  *param, *end, *amp, *eq;

    o = 0;
    kept = 0;
    nremoved = 0;
    *outlen = 0;

    if (q == NULL || len == 0) {
        return 0;
    }

    /* every '&'-separated piece is a parameter, an empty one too: kept as
       it is, so that a query with nothing to strip comes out unchanged */
    for (param = q, end = q + len; ; param = amp + 1) {
        amp = memchr(param, '&', (size_t) (end - param));
        plen = (size_t) ((amp != NULL ? amp : end) - param);

        eq = memchr(param, '=', plen);
        nlen = eq != NULL ? (size_t) (eq - param) : plen;

        if (nlen != 0 && ag_strip_qname(p, tool, param, nlen)) {
            if (nremoved < max) {
                removed[nremoved].p = param;
                removed[nremoved].len = nlen;
            }
            nremoved++;

        } else {
            if (kept++ != 0) {
                out[o++] = '&';
            }
            memcpy(out + o, param, plen);
            o += plen;
        }

        if (amp == NULL) {
            break;
        }
    }

    *outlen = o;
    return nremoved;
}
