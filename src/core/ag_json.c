#include <errno.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ag_json.h"


int
ag_json_depth(const char *data, size_t len, int limit)
{
    size_t  i;
    int     depth, max, in_string;

    depth = 0;
    max = 0;
    in_string = 0;

    for (i = 0; i < len; i++) {
        char c = data[i];

        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }

        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max) {
                max = depth;
                if (max > limit) {
                    return max;
                }
            }
            break;
        case ']':
        case '}':
            if (--depth < 0) {
                return -1;
            }
            break;
        default:
            break;
        }
    }

    return depth == 0 ? max : -1;
}


/*
 * A NUL byte is never JSON: jansson 2.14 skips one right after a number or
 * a literal ("[1\0]" loads), which a tool may read otherwise. Both parsers
 * refuse it first.
 */
static int
ag_json_has_nul(const char *data, size_t len, char *err, size_t errlen)
{
    const char  *nul;

    nul = memchr(data, '\0', len);
    if (nul == NULL) {
        return 0;
    }

    if (err != NULL && errlen) {
        snprintf(err, errlen, "malformed JSON at byte %zu: a NUL byte",
                 (size_t) (nul - data));
    }

    return 1;
}


json_t *
ag_json_parse_ref(const char *data, size_t len, char *err, size_t errlen)
{
    int           depth;
    json_t       *v;
    json_error_t  je;

    if (len == 0) {
        snprintf(err, errlen, "empty JSON text");
        return NULL;
    }

    if (ag_json_has_nul(data, len, err, errlen)) {
        return NULL;
    }

    /* jansson's own limit is far deeper; counting first also bounds the
       parser's recursion on hostile input */
    depth = ag_json_depth(data, len, AG_JSON_MAX_DEPTH);
    if (depth > AG_JSON_MAX_DEPTH) {
        snprintf(err, errlen, "JSON nested deeper than %d", AG_JSON_MAX_DEPTH);
        return NULL;
    }

    v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (v == NULL) {
        snprintf(err, errlen, "malformed JSON at byte %d: %s", je.position,
                 je.text);
        return NULL;
    }

    return v;
}


/*
 * The fast parser: the same values as ag_json_parse_ref, built straight from
 * the bytes. jansson's loader reads through a stream one character at a time
 * (about 190 instructions a byte); this one scans runs of plain string bytes
 * eight at a time and calls jansson only to make the values.
 *
 * What it accepts must be exactly what the reference accepts (the fuzz target
 * json_diff holds the two to it), including jansson 2.14's quirks:
 *
 *  - one NUL byte right after a number or true/false/null is skipped:
 *    jansson ungets the character that ends those tokens, and a NUL cannot be
 *    ungot from its stream buffer, so it is read past ("[1\0]" is [1]);
 *  - "-0" is the integer 0; a real that underflows is 0.0 or a denormal, one
 *    that overflows is refused; an integer that does not fit json_int_t is
 *    refused, never made a real;
 *  - depth is what ag_json_depth counts over the whole text, so a text that
 *    is malformed somewhere and deeper than the limit somewhere else is
 *    refused as too deep.
 *
 * Containers go into their parent as soon as they open, so an error frees
 * everything with the root, and a key is needed only until its value exists.
 */

#define AG_JSON_ONES       0x0101010101010101ULL
#define AG_JSON_HIGHS      0x8080808080808080ULL
#define AG_JSON_BUF_FIXED  512

#if JSON_INTEGER_IS_LONG_LONG
#define AG_JSON_INT_MAX    LLONG_MAX
#else
#define AG_JSON_INT_MAX    LONG_MAX
#endif

/* the whitespace of RFC 8259, as bits of a mask indexed by the byte */
#define AG_JSON_WS_MASK    ((1ULL << ' ') | (1ULL << '\t') | (1ULL << '\n')  \
                            | (1ULL << '\r'))
#define ag_json_is_ws(c)   ((c) <= ' ' && (AG_JSON_WS_MASK >> (c) & 1))
#define ag_json_is_digit(c)  ((unsigned) ((c) - '0') < 10)


/* room for a decoded string: on the stack unless it is long */
typedef struct {
    char    *data;
    size_t   cap;
    char     fixed[AG_JSON_BUF_FIXED];
} ag_json_buf_t;

typedef struct {
    const unsigned char  *start;
    const unsigned char  *end;
    const unsigned char  *at;           /* where the text went wrong */
    const char           *reason;
    int                   deep;         /* opened level AG_JSON_MAX_DEPTH + 1 */
    int                   nomem;
    ag_json_buf_t         key;          /* a key with escapes, decoded */
    ag_json_buf_t         str;          /* a string value with escapes */
} ag_json_parser_t;


static const unsigned char *
ag_json_fail(ag_json_parser_t *ps, const unsigned char *at, const char *reason)
{
    ps->at = at;
    ps->reason = reason;
    return NULL;
}


/* Room for n bytes in b (what it held is not kept). */
static int
ag_json_buf_reserve(ag_json_parser_t *ps, ag_json_buf_t *b, size_t n)
{
    char  *nd;

    if (n <= b->cap) {
        return 0;
    }

    nd = malloc(n);
    if (nd == NULL) {
        ps->nomem = 1;
        return -1;
    }

    if (b->data != b->fixed) {
        free(b->data);
    }

    b->data = nd;
    b->cap = n;
    return 0;
}


static const unsigned char *
ag_json_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && ag_json_is_ws(*p)) {
        p++;
    }

    return p;
}


/* The first byte at or after p that a string cannot hold as it is: '"', '\\',
   a control character or the start of a UTF-8 sequence; end if none. Agent
   bodies are mostly ASCII text, so this loop is where the time goes. */
static inline const unsigned char *
ag_json_plain(const unsigned char *p, const unsigned char *end)
{
    uint64_t  x, q, b, hit;

    while (end - p >= 8) {
        memcpy(&x, p, 8);
        q = x ^ (AG_JSON_ONES * '"');
        b = x ^ (AG_JSON_ONES * '\\');

        /* the high bit of each byte that is < 0x20, '"', '\\' or >= 0x80;
           a borrow can only mark bytes after a true one */
        hit = ((x - AG_JSON_ONES * 0x20) | (q - AG_JSON_ONES)
               | (b - AG_JSON_ONES)) & ~x & AG_JSON_HIGHS;
        hit |= x & AG_JSON_HIGHS;

        if (hit) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__)                              \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }

        p += 8;
    }

    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
        p++;
    }

    return p;
}


/* The length of the well-formed UTF-8 sequence at p (*p >= 0x80), or 0: no
   overlong forms, no surrogates, nothing above U+10FFFF (Unicode table 3-7,
   what jansson's utf8_check_full allows). */
static size_t
ag_json_utf8(const unsigned char *p, const unsigned char *end)
{
    size_t         n, i;
    unsigned char  c, lo, hi;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c < 0xc2) {
        return 0;

    } else if (c < 0xe0) {
        n = 2;

    } else if (c < 0xf0) {
        n = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c < 0xf5) {
        n = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}


static long
ag_json_hex4(const unsigned char *p)
{
    long           v;
    int            i;
    unsigned char  c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];
        if (ag_json_is_digit(c)) {
            v = v << 4 | (c - '0');
        } else {
            c |= 0x20;
            if (c < 'a' || c > 'f') {
                return -1;
            }
            v = v << 4 | (c - 'a' + 10);
        }
    }

    return v;
}


/* The first '"' or '\\' at or after p; end if none. */
static const unsigned char *
ag_json_quote(const unsigned char *p, const unsigned char *end)
{
    uint64_t  x, q, b, hit;

    while (end - p >= 8) {
        memcpy(&x, p, 8);
        q = x ^ (AG_JSON_ONES * '"');
        b = x ^ (AG_JSON_ONES * '\\');
        hit = ((q - AG_JSON_ONES) & ~q) | ((b - AG_JSON_ONES) & ~b);
        hit &= AG_JSON_HIGHS;

        if (hit) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__)                              \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }

        p += 8;
    }

    while (p < end && *p != '"' && *p != '\\') {
        p++;
    }

    return p;
}


/* The escape at p ('\\'), decoded to *t (never more bytes than it reads);
   returns what follows it. */
static const unsigned char *
ag_json_escape(ag_json_parser_t *ps, const unsigned char *p,
    const unsigned char *end, unsigned char **t)
{
    long            cp, lo;
    unsigned char  *u;

    u = *t;

    if (end - p < 2) {
        return ag_json_fail(ps, end, "unterminated string");
    }

    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
        *u = p[1];
        break;
    case 'b':
        *u = '\b';
        break;
    case 'f':
        *u = '\f';
        break;
    case 'n':
        *u = '\n';
        break;
    case 'r':
        *u = '\r';
        break;
    case 't':
        *u = '\t';
        break;

    case 'u':
        if (end - p < 6 || (cp = ag_json_hex4(p + 2)) < 0) {
            return ag_json_fail(ps, p, "\\u needs four hex digits");
        }

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            return ag_json_fail(ps, p, "lone low surrogate escape");
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 12 || p[6] != '\\' || p[7] != 'u') {
                return ag_json_fail(ps, p, "high surrogate escape without a "
                                    "low one");
            }

            lo = ag_json_hex4(p + 8);
            if (lo < 0) {
                return ag_json_fail(ps, p + 6, "\\u needs four hex digits");
            }

            if (lo < 0xdc00 || lo > 0xdfff) {
                return ag_json_fail(ps, p, "high surrogate escape without a "
                                    "low one");
            }

            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        }

        if (cp == 0) {
            /* jansson without JSON_ALLOW_NUL, and C strings downstream */
            return ag_json_fail(ps, p, "\\u0000 is not allowed");
        }

        if (cp < 0x80) {
            *u++ = (unsigned char) cp;
        } else if (cp < 0x800) {
            *u++ = (unsigned char) (0xc0 | cp >> 6);
            *u++ = (unsigned char) (0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            *u++ = (unsigned char) (0xe0 | cp >> 12);
            *u++ = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
            *u++ = (unsigned char) (0x80 | (cp & 0x3f));
        } else {
            *u++ = (unsigned char) (0xf0 | cp >> 18);
            *u++ = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
            *u++ = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
            *u++ = (unsigned char) (0x80 | (cp & 0x3f));
        }

        *t = u;
        return p + 6;

    default:
        return ag_json_fail(ps, p, "invalid escape");
    }

    *t = u + 1;
    return p + 2;
}


/* The rest of ag_json_string, from p (not plain) in the string at start. */
static const unsigned char *
ag_json_string_rest(ag_json_parser_t *ps, const unsigned char *start,
    const unsigned char *p, ag_json_buf_t *b, const char **s, size_t *slen)
{
    size_t                n;
    unsigned char        *t;
    const unsigned char  *end, *run;

    end = ps->end;

    for ( ;; ) {
        p = ag_json_plain(p, end);

        if (p == end) {
            return ag_json_fail(ps, p, "unterminated string");
        }

        if (*p == '"') {
            *s = (const char *) start;
            *slen = (size_t) (p - start);
            return p + 1;
        }

        if (*p == '\\') {
            break;
        }

        if (*p < 0x20) {
            return ag_json_fail(ps, p, "control character in string");
        }

        n = ag_json_utf8(p, end);
        if (n == 0) {
            return ag_json_fail(ps, p, "invalid UTF-8 in string");
        }

        p += n;
    }

    /*
     * Escapes. Each decodes to fewer bytes than it takes, so the string
     * decodes into no more than its raw length. Its end is the first quote
     * that is not the second byte of a backslash pair; decoding reads no
     * further than that (where the two could disagree the text is malformed
     * anyway), so it never writes past the room reserved.
     */

    run = p;
    for ( ;; ) {
        run = ag_json_quote(run, end);
        if (run == end) {
            return ag_json_fail(ps, end, "unterminated string");
        }

        if (*run == '"') {
            break;
        }

        if (end - run < 2) {
            return ag_json_fail(ps, end, "unterminated string");
        }

        run += 2;
    }

    end = run;

    if (ag_json_buf_reserve(ps, b, (size_t) (end - start)) != 0) {
        return NULL;
    }

    t = (unsigned char *) b->data;
    memcpy(t, start, (size_t) (p - start));
    t += p - start;

    for ( ;; ) {
        /* p is at a byte that is not plain */

        if (*p == '\\') {
            p = ag_json_escape(ps, p, end, &t);
            if (p == NULL) {
                return NULL;
            }

        } else if (*p == '"') {
            *s = b->data;
            *slen = (size_t) (t - (unsigned char *) b->data);
            return p + 1;

        } else if (*p < 0x20) {
            return ag_json_fail(ps, p, "control character in string");

        } else {
            n = ag_json_utf8(p, end);
            if (n == 0) {
                return ag_json_fail(ps, p, "invalid UTF-8 in string");
            }
            memcpy(t, p, n);
            t += n;
            p += n;
        }

        run = p;
        p = ag_json_plain(p, end + 1);

        if (p > end) {
            return ag_json_fail(ps, end, "unterminated string");
        }

        memcpy(t, run, (size_t) (p - run));
        t += p - run;
    }
}


/*
 * The string whose opening quote is at p - 1. Without escapes its bytes are
 * the text's own (*s points into it); with them they are decoded into b.
 * Returns what follows the closing quote. Most strings are one plain run,
 * done here inline.
 */
static inline const unsigned char *
ag_json_string(ag_json_parser_t *ps, const unsigned char *p, ag_json_buf_t *b,
    const char **s, size_t *slen)
{
    const unsigned char  *q;

    q = ag_json_plain(p, ps->end);

    if (q < ps->end && *q == '"') {
        *s = (const char *) p;
        *slen = (size_t) (q - p);
        return q + 1;
    }

    return ag_json_string_rest(ps, p, q, b, s, slen);
}


#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
/* the powers of ten a double holds exactly */
static const double  ag_json_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};
#endif


/* A real that the fast path cannot do: strtod, as jansson calls it (with the
   locale's decimal point), on a NUL-terminated copy. */
static int
ag_json_strtod(ag_json_parser_t *ps, const unsigned char *s, size_t n,
    double *d)
{
    int          rc;
    char        *t, *dot, fixed[64];
    const char  *point;

    t = n < sizeof(fixed) ? fixed : malloc(n + 1);
    if (t == NULL) {
        ps->nomem = 1;
        return -1;
    }

    memcpy(t, s, n);
    t[n] = '\0';

    point = localeconv()->decimal_point;
    if (*point != '.') {
        dot = strchr(t, '.');
        if (dot != NULL) {
            *dot = *point;
        }
    }

    errno = 0;
    *d = strtod(t, NULL);
    rc = ((*d == HUGE_VAL || *d == -HUGE_VAL) && errno == ERANGE) ? -1 : 0;

    if (t != fixed) {
        free(t);
    }

    return rc;
}


/*
 * The number at p (a '-' or a digit), by RFC 8259's grammar, into *v.
 * Integers are made here; a real with at most 19 significant digits and a
 * power of ten within 10^22 is one exact IEEE operation (Clinger's fast path,
 * the same result strtod rounds to), anything else goes to strtod.
 */
static const unsigned char *
ag_json_number(ag_json_parser_t *ps, const unsigned char *p, json_t **v)
{
    int                   neg, slow, eneg;
    long                  e10, exp;
    size_t                nd;
    double                d;
    uint64_t              m;
    const unsigned char  *s, *end;

    s = p;
    end = ps->end;
    neg = *p == '-';
    p += neg;
    m = 0;
    nd = 0;

    if (p == end || !ag_json_is_digit(*p)) {
        return ag_json_fail(ps, p, "digit expected");
    }

    if (*p == '0') {
        p++;
        if (p < end && ag_json_is_digit(*p)) {
            return ag_json_fail(ps, p, "leading zero in number");
        }

    } else {
        do {
            if (++nd <= 19) {
                m = m * 10 + (uint64_t) (*p - '0');
            }
            p++;
        } while (p < end && ag_json_is_digit(*p));
    }

    if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {

        /* 19 digits fit in m; json_int_t takes up to AG_JSON_INT_MAX, and
           one more when negative */
        if (nd > 19 || m > (uint64_t) AG_JSON_INT_MAX + (uint64_t) neg) {
            return ag_json_fail(ps, s, neg ? "too big negative integer"
                                           : "too big integer");
        }

        *v = json_integer(neg && m ? -(json_int_t) (m - 1) - 1
                                   : (json_int_t) m);
        goto made;
    }

    slow = nd > 19;
    e10 = 0;

    if (*p == '.') {
        p++;
        if (p == end || !ag_json_is_digit(*p)) {
            return ag_json_fail(ps, p, "digit expected after '.'");
        }

        do {
            if (slow) {
                /* only the end of the number matters now */

            } else if (m == 0 && *p == '0') {
                /* a leading zero of the fraction: not a significant digit */
                if (--e10 < -100000) {
                    slow = 1;
                }

            } else if (++nd <= 19) {
                m = m * 10 + (uint64_t) (*p - '0');
                e10--;

            } else {
                slow = 1;
            }
            p++;
        } while (p < end && ag_json_is_digit(*p));
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }

        if (p == end || !ag_json_is_digit(*p)) {
            return ag_json_fail(ps, p, "digit expected in exponent");
        }

        exp = 0;
        do {
            if (exp < 100000) {
                exp = exp * 10 + (*p - '0');
            }
            p++;
        } while (p < end && ag_json_is_digit(*p));

        e10 += eneg ? -exp : exp;
    }

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    if (!slow && m == 0) {
        d = 0.0;

    } else if (!slow && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        d = e10 < 0 ? (double) m / ag_json_pow10[-e10]
                    : (double) m * ag_json_pow10[e10];

    } else
#endif
    if (ag_json_strtod(ps, s, (size_t) (p - s), &d) != 0) {
        return ps->nomem ? NULL
                         : ag_json_fail(ps, s, "real number overflow");

    } else {
        /* strtod has read the sign already */
        neg = 0;
    }

    *v = json_real(neg ? -d : d);

made:

    if (*v == NULL) {
        ps->nomem = 1;
        return NULL;
    }

    /* jansson's quirk (see above): it cannot unget a NUL after a number */
    if (p < end && *p == '\0') {
        p++;
    }

    return p;
}


/* true, false or null at p; as jansson, one NUL right after it is skipped */
static const unsigned char *
ag_json_literal(ag_json_parser_t *ps, const unsigned char *p, json_t **v)
{
    size_t       n;
    const char  *lit;

    switch (*p) {
    case 't':
        lit = "true";
        *v = json_true();
        break;
    case 'f':
        lit = "false";
        *v = json_false();
        break;
    default:
        lit = "null";
        *v = json_null();
        break;
    }

    n = strlen(lit);

    if ((size_t) (ps->end - p) < n || memcmp(p, lit, n) != 0) {
        return ag_json_fail(ps, p, "invalid literal");
    }

    p += n;

    if (p < ps->end && *p == '\0') {
        p++;
    }

    return p;
}


/* The value at p (not whitespace) into *v; *opened when it is an empty
   container just made, whose contents follow. */
static const unsigned char *
ag_json_value(ag_json_parser_t *ps, const unsigned char *p, json_t **v,
    int *opened)
{
    size_t       slen;
    const char  *s;

    *opened = 0;

    if (p == ps->end) {
        return ag_json_fail(ps, p, "value expected");
    }

    switch (*p) {

    case '{':
    case '[':
        *v = *p == '{' ? json_object() : json_array();
        if (*v == NULL) {
            ps->nomem = 1;
            return NULL;
        }

        *opened = 1;
        return p + 1;

    case '"':
        p = ag_json_string(ps, p + 1, &ps->str, &s, &slen);
        if (p == NULL) {
            return NULL;
        }

        *v = json_stringn_nocheck(s, slen);
        if (*v == NULL) {
            ps->nomem = 1;
            return NULL;
        }

        return p;

    case 't':
    case 'f':
    case 'n':
        return ag_json_literal(ps, p, v);

    default:
        if (*p != '-' && !ag_json_is_digit(*p)) {
            return ag_json_fail(ps, p, "value expected");
        }

        return ag_json_number(ps, p, v);
    }
}


/*
 * v into the open container top (an object when obj, under key), at once:
 * then the root owns everything made so far, and an error frees it all.
 * The *_new calls take v also when they fail.
 */
static int
ag_json_put(ag_json_parser_t *ps, json_t *top, int obj, const char *key,
    size_t klen, const unsigned char *kat, json_t *v)
{
    size_t  n;

    if (!obj) {
        if (json_array_append_new(top, v) != 0) {
            ps->nomem = 1;
            return -1;
        }

        return 0;
    }

    /* a key that is there already leaves the size as it was: one hash
       lookup instead of json_object_getn's and then set's */
    n = json_object_size(top);

    if (json_object_setn_new_nocheck(top, key, klen, v) != 0) {
        ps->nomem = 1;
        return -1;
    }

    if (json_object_size(top) == n) {
        ag_json_fail(ps, kat, "duplicate key");
        return -1;
    }

    return 0;
}


/*
 * The text as one value. The open containers are on an explicit stack of
 * AG_JSON_MAX_DEPTH: no recursion, and opening one more is "too deep".
 */
static json_t *
ag_json_run(ag_json_parser_t *ps)
{
    int                   obj, opened;
    size_t                depth, klen;
    json_t               *stack[AG_JSON_MAX_DEPTH], *root, *top, *v;
    const char           *key;
    const unsigned char  *p, *end, *kat;

    end = ps->end;
    p = ag_json_ws(ps->start, end);
    depth = 0;
    root = NULL;
    top = NULL;
    obj = 0;
    key = NULL;
    klen = 0;
    kat = NULL;

value:

    p = ag_json_value(ps, p, &v, &opened);
    if (p == NULL) {
        goto failed;
    }

    if (top == NULL) {
        root = v;

    } else if (ag_json_put(ps, top, obj, key, klen, kat, v) != 0) {
        goto failed;
    }

    if (opened) {
        if (depth == AG_JSON_MAX_DEPTH) {
            ps->deep = 1;
            goto failed;
        }

        stack[depth++] = v;
        top = v;
        obj = json_is_object(v);

        p = ag_json_ws(p, end);
        if (p < end && *p == (obj ? '}' : ']')) {
            p++;
            goto close;
        }

        if (obj) {
            goto key;
        }

        goto value;
    }

next:

    p = ag_json_ws(p, end);

    if (top == NULL) {
        if (p != end) {
            ag_json_fail(ps, p, "data after the JSON value");
            goto failed;
        }

        return root;
    }

    if (p < end && *p == ',') {
        p = ag_json_ws(p + 1, end);
        if (obj) {
            goto key;
        }

        goto value;
    }

    if (p < end && *p == (obj ? '}' : ']')) {
        p++;
        goto close;
    }

    ag_json_fail(ps, p, obj ? "',' or '}' expected" : "',' or ']' expected");
    goto failed;

close:

    if (--depth == 0) {
        top = NULL;
    } else {
        top = stack[depth - 1];
        obj = json_is_object(top);
    }

    goto next;

key:

    if (p == end || *p != '"') {
        ag_json_fail(ps, p, "string key expected");
        goto failed;
    }

    kat = p;
    p = ag_json_string(ps, p + 1, &ps->key, &key, &klen);
    if (p == NULL) {
        goto failed;
    }

    p = ag_json_ws(p, end);
    if (p == end || *p != ':') {
        ag_json_fail(ps, p, "':' expected");
        goto failed;
    }

    p = ag_json_ws(p + 1, end);
    goto value;

failed:

    json_decref(root);
    return NULL;
}


static void
ag_json_buf_init(ag_json_buf_t *b)
{
    b->data = b->fixed;
    b->cap = sizeof(b->fixed);
}


static void
ag_json_buf_free(ag_json_buf_t *b)
{
    if (b->data != b->fixed) {
        free(b->data);
    }
}


json_t *
ag_json_parse(const char *data, size_t len, char *err, size_t errlen)
{
    json_t            *v;
    ag_json_parser_t   ps;

    if (len == 0) {
        snprintf(err, errlen, "empty JSON text");
        return NULL;
    }

    if (ag_json_has_nul(data, len, err, errlen)) {
        return NULL;
    }

    ps.start = (const unsigned char *) data;
    ps.end = ps.start + len;
    ps.at = ps.start;
    ps.reason = "";
    ps.deep = 0;
    ps.nomem = 0;
    ag_json_buf_init(&ps.key);
    ag_json_buf_init(&ps.str);

    v = ag_json_run(&ps);

    ag_json_buf_free(&ps.key);
    ag_json_buf_free(&ps.str);

    if (v != NULL) {
        return v;
    }

    if (ps.nomem) {
        snprintf(err, errlen, "out of memory parsing JSON");
        return NULL;
    }

    /* the reference counts the whole text's depth before it parses: a text
       too deep somewhere is refused as that, wherever else it is wrong */
    if (ps.deep
        || ag_json_depth(data, len, AG_JSON_MAX_DEPTH) > AG_JSON_MAX_DEPTH)
    {
        snprintf(err, errlen, "JSON nested deeper than %d", AG_JSON_MAX_DEPTH);
        return NULL;
    }

    snprintf(err, errlen, "malformed JSON at byte %zu: %s",
             (size_t) (ps.at - ps.start), ps.reason);
    return NULL;
}
