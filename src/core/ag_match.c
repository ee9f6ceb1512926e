#define PCRE2_CODE_UNIT_WIDTH  8

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcre2.h>

#include "ag_match.h"
#include "ag_util.h"


ag_tri_t
ag_tri_not(ag_tri_t a)
{
    return a == AG_TRUE ? AG_FALSE : (a == AG_FALSE ? AG_TRUE : AG_DOUBT);
}


const char *
ag_tri_name(ag_tri_t a)
{
    return a == AG_TRUE ? "true" : (a == AG_FALSE ? "false" : "doubt");
}


/* --- pool ------------------------------------------------------------------ */

#define AG_POOL_CHUNK  16384
#define AG_POOL_ALIGN  16
#define ag_align(n)    (((n) + AG_POOL_ALIGN - 1) & ~((size_t) AG_POOL_ALIGN - 1))

typedef struct ag_pool_chunk_s  ag_pool_chunk_t;

struct ag_pool_chunk_s {
    ag_pool_chunk_t  *next;
};

#define AG_POOL_HDR  ag_align(sizeof(ag_pool_chunk_t))

typedef struct ag_pool_cleanup_s  ag_pool_cleanup_t;

struct ag_pool_cleanup_s {
    void              (*fn)(void *);
    void               *data;
    ag_pool_cleanup_t  *next;
};

struct ag_pool_s {
    ag_pool_chunk_t    *chunks;
    char               *p;
    char               *end;
    ag_pool_cleanup_t  *cleanups;
};


ag_pool_t *
ag_pool_create(void)
{
    return calloc(1, sizeof(ag_pool_t));
}


void
ag_pool_destroy(ag_pool_t *pool)
{
    ag_pool_chunk_t    *ch, *next;
    ag_pool_cleanup_t  *cl;

    if (pool == NULL) {
        return;
    }

    for (cl = pool->cleanups; cl != NULL; cl = cl->next) {
        cl->fn(cl->data);
    }

    for (ch = pool->chunks; ch != NULL; ch = next) {
        next = ch->next;
        free(ch);
    }

    free(pool);
}


void *
ag_pool_alloc(ag_pool_t *pool, size_t size)
{
    char             *m;
    ag_pool_chunk_t  *ch;

    size = ag_align(size ? size : 1);

    if ((size_t) (pool->end - pool->p) >= size) {
        m = pool->p;
        pool->p += size;
        return m;
    }

    /* large blocks get a chunk of their own, so that the current chunk's
       free tail is not wasted */
    if (size > AG_POOL_CHUNK / 4) {
        ch = calloc(1, AG_POOL_HDR + size);
        if (ch == NULL) {
            return NULL;
        }
        if (pool->chunks != NULL) {
            ch->next = pool->chunks->next;
            pool->chunks->next = ch;
        } else {
            pool->chunks = ch;
        }
        return (char *) ch + AG_POOL_HDR;
    }

    ch = calloc(1, AG_POOL_HDR + AG_POOL_CHUNK);
    if (ch == NULL) {
        return NULL;
    }
    ch->next = pool->chunks;
    pool->chunks = ch;
    pool->p = (char *) ch + AG_POOL_HDR + size;
    pool->end = (char *) ch + AG_POOL_HDR + AG_POOL_CHUNK;

    return (char *) ch + AG_POOL_HDR;
}


char *
ag_pool_strndup(ag_pool_t *pool, const char *s, size_t len)
{
    char  *d;

    d = ag_pool_alloc(pool, len + 1);
    if (d != NULL && len != 0) {
        memcpy(d, s, len);
    }
    return d;
}


int
ag_pool_cleanup_add(ag_pool_t *pool, void (*fn)(void *), void *data)
{
    ag_pool_cleanup_t  *cl;

    cl = ag_pool_alloc(pool, sizeof(ag_pool_cleanup_t));
    if (cl == NULL) {
        return -1;
    }
    cl->fn = fn;
    cl->data = data;
    cl->next = pool->cleanups;
    pool->cleanups = cl;
    return 0;
}


/* --- compile context ----------------------------------------------------------- */

static size_t
ag_cappend(ag_compile_t *c, const char *s, size_t len)
{
    size_t  old = c->plen;

    if (c->plen + 1 + len >= AG_JPATH_MAX) {
        len = c->plen + 1 < AG_JPATH_MAX - 1 ? AG_JPATH_MAX - 2 - c->plen : 0;
    }
    if (c->plen + 1 < AG_JPATH_MAX) {
        c->path[c->plen++] = '/';
        memcpy(c->path + c->plen, s, len);
        c->plen += len;
    }
    c->path[c->plen] = '\0';
    return old;
}


size_t
ag_cpush(ag_compile_t *c, const char *seg)
{
    return ag_cappend(c, seg, strlen(seg));
}


size_t
ag_cpush_index(ag_compile_t *c, size_t i)
{
    char  buf[32];
    int   n;

    n = snprintf(buf, sizeof(buf), "%zu", i);
    return ag_cappend(c, buf, (size_t) n);
}


void
ag_cpop(ag_compile_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}


int
ag_cerror(ag_compile_t *c, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (c->errlen == 0) {
        return -1;
    }

    n = snprintf(c->err, c->errlen, "%s: ", c->plen ? c->path : "/");
    if (n < 0 || (size_t) n >= c->errlen) {
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t) n, fmt, ap);
    va_end(ap);

    return -1;
}


/* --- globs ------------------------------------------------------------------------ */

enum {
    AG_GL_LIT = 0,
    AG_GL_STAR,
    AG_GL_DSTAR
};

typedef struct {
    uint8_t      kind;
    uint16_t     skip;      /* an epsilon edge from this state to that one */
} ag_glob_el_t;

struct ag_glob_s {
    const char    *src;
    size_t         srclen;
    char          *chars;   /* the byte of each literal element */
    ag_glob_el_t  *el;
    size_t         n;       /* elements; the automaton's states are 0..n */
    size_t         nprefix; /* leading literal elements, compared with memcmp */
    size_t         nsuffix; /* trailing literal elements */
    uint16_t      *eps;     /* states with epsilon edges, ascending */
    size_t         neps;
    int            literal;
};

#define AG_GLOB_WORDS  ((AG_GLOB_MAX + 1 + 63) / 64)
#define ag_bit_set(set, i)   ((set)[(i) >> 6] |= (uint64_t) 1 << ((i) & 63))
#define ag_bit_test(set, i)  (((set)[(i) >> 6] >> ((i) & 63)) & 1)


static void
ag_glob_mark(ag_glob_t *g)
{
    size_t  i, j;

    /* a '**' right after '/' and before '/' or the end may match zero
       segments: an epsilon edge skips the '/' and the '**' together */
    for (j = 1; j < g->n; j++) {
        if (g->el[j].kind == AG_GL_DSTAR
            && g->el[j - 1].kind == AG_GL_LIT && g->chars[j - 1] == '/'
            && (j + 1 == g->n
                || (g->el[j + 1].kind == AG_GL_LIT && g->chars[j + 1] == '/')))
        {
            g->el[j - 1].skip = (uint16_t) (j + 1);
        }
    }

    g->neps = 0;
    for (i = 0; i < g->n; i++) {
        if (g->el[i].kind != AG_GL_LIT || g->el[i].skip) {
            g->eps[g->neps++] = (uint16_t) i;
        }
    }

    for (i = 0; i < g->n && g->el[i].kind == AG_GL_LIT && !g->el[i].skip; i++) {
        /* void */
    }
    g->nprefix = i;
    g->literal = (i == g->n);

    for (i = 0; !g->literal && g->el[g->n - 1 - i].kind == AG_GL_LIT; i++) {
        /* void */
    }
    g->nsuffix = i;
}


ag_glob_t *
ag_glob_compile(ag_pool_t *pool, const char *pat, size_t len, char *err,
    size_t errlen)
{
    size_t      i;
    ag_glob_t  *g;

    if (len > AG_GLOB_MAX) {
        snprintf(err, errlen, "glob longer than %d bytes", AG_GLOB_MAX);
        return NULL;
    }

    g = ag_pool_alloc(pool, sizeof(ag_glob_t));
    if (g == NULL
        || (g->src = ag_pool_strndup(pool, pat, len)) == NULL
        || (g->chars = ag_pool_alloc(pool, len + 1)) == NULL
        || (g->el = ag_pool_alloc(pool, (len + 1) * sizeof(ag_glob_el_t)))
           == NULL
        || (g->eps = ag_pool_alloc(pool, (len + 1) * sizeof(uint16_t))) == NULL)
    {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->srclen = len;

    for (i = 0; i < len; i++) {
        if (pat[i] != '*') {
            g->el[g->n].kind = AG_GL_LIT;
            g->chars[g->n++] = pat[i];
            continue;
        }
        if (i + 1 < len && pat[i + 1] == '*') {
            /* "***" and longer mean the same as "**" */
            while (i + 1 < len && pat[i + 1] == '*') {
                i++;
            }
            g->el[g->n++].kind = AG_GL_DSTAR;
        } else {
            g->el[g->n++].kind = AG_GL_STAR;
        }
    }

    ag_glob_mark(g);
    return g;
}


static void
ag_glob_closure(const ag_glob_t *g, uint64_t *set, size_t lo, size_t hi)
{
    size_t  k, st;

    for (k = 0; k < g->neps; k++) {
        st = g->eps[k];
        if (st < lo) {
            continue;
        }
        if (st >= hi) {
            break;
        }
        if (!ag_bit_test(set, st)) {
            continue;
        }
        if (g->el[st].kind != AG_GL_LIT) {
            ag_bit_set(set, st + 1);
        }
        if (g->el[st].skip) {
            ag_bit_set(set, g->el[st].skip);
        }
    }
}


/* One input byte: every live state moves along its edges. Returns whether
   any state is still live. */
static int
ag_glob_step(const ag_glob_t *g, const uint64_t *cur, uint64_t *next,
    size_t lo, size_t hi, char c)
{
    size_t    w, st, nw;
    uint64_t  bits, live;

    nw = hi / 64 + 1;
    memset(next, 0, nw * sizeof(uint64_t));

    for (w = lo / 64; w < nw; w++) {
        for (bits = cur[w]; bits != 0; bits &= bits - 1) {
            st = w * 64 + (size_t) __builtin_ctzll(bits);
            if (st >= hi) {
                continue;
            }
            switch (g->el[st].kind) {
            case AG_GL_LIT:
                if (g->chars[st] == c) {
                    ag_bit_set(next, st + 1);
                }
                break;
            case AG_GL_STAR:
                if (c != '/') {
                    ag_bit_set(next, st);
                }
                break;
            default:
                ag_bit_set(next, st);
                break;
            }
        }
    }

    ag_glob_closure(g, next, lo, hi);

    live = 0;
    for (w = lo / 64; w < nw; w++) {
        live |= next[w];
    }
    return live != 0;
}


int
ag_glob_match(const ag_glob_t *g, const char *s, size_t len)
{
    size_t     lo, hi, i;
    uint64_t   a[AG_GLOB_WORDS], b[AG_GLOB_WORDS], *cur, *next, *t;

    if (s == NULL) {
        if (len != 0) {
            return 0;
        }
        s = "";
    }

    if (g->literal) {
        return len == g->n && (len == 0 || memcmp(s, g->chars, len) == 0);
    }

    if (len < g->nprefix + g->nsuffix
        || memcmp(s, g->chars, g->nprefix) != 0
        || memcmp(s + len - g->nsuffix, g->chars + g->n - g->nsuffix,
                  g->nsuffix) != 0)
    {
        return 0;
    }

    /* only the part between the literal ends needs the automaton */
    lo = g->nprefix;
    hi = g->n - g->nsuffix;
    s += lo;
    len -= lo + g->nsuffix;

    if (hi - lo == 1 && g->el[lo].kind == AG_GL_DSTAR) {
        return 1;
    }
    if (hi - lo == 1 && g->el[lo].kind == AG_GL_STAR) {
        return len == 0 || memchr(s, '/', len) == NULL;
    }

    cur = a;
    next = b;
    memset(cur, 0, (hi / 64 + 1) * sizeof(uint64_t));
    ag_bit_set(cur, lo);
    ag_glob_closure(g, cur, lo, hi);

    for (i = 0; i < len; i++) {
        if (!ag_glob_step(g, cur, next, lo, hi, s[i])) {
            return 0;
        }
        t = cur;
        cur = next;
        next = t;
    }

    return (int) ag_bit_test(cur, hi);
}


int
ag_glob_is_literal(const ag_glob_t *g)
{
    return g->literal;
}


const char *
ag_glob_source(const ag_glob_t *g)
{
    return g->src;
}


/* --- regexes --------------------------------------------------------------------- */

struct ag_regex_s {
    pcre2_code           *code;
    pcre2_match_context  *mctx;
    const char           *src;
    char                 *lit;      /* what every match begins with */
    size_t                nlit;
};


static void
ag_regex_cleanup(void *data)
{
    ag_regex_t  *re = data;

    pcre2_match_context_free(re->mctx);
    pcre2_code_free(re->code);
}


static void
ag_regex_errmsg(int code, size_t off, char *err, size_t errlen)
{
    PCRE2_UCHAR  msg[256];

    if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0) {
        snprintf((char *) msg, sizeof(msg), "error %d", code);
    }
    snprintf(err, errlen, "invalid regex: %s at offset %zu", (char *) msg, off);
}


/* A byte that stands for itself in a pattern, outside a class, without a
   backslash (a deliberately short list: nothing PCRE2 gives a meaning to). */
static int
ag_re_plain(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("/-_~%:@,=!&;'", c) != NULL);
}


/* "\" and then a byte that PCRE2 reads as that byte itself: any ASCII
   punctuation (a letter or digit after a backslash means something else). */
static int
ag_re_escaped(const char *s, size_t len, size_t i)
{
    unsigned char  c;

    if (s[i] != '\\' || i + 1 >= len) {
        return 0;
    }
    c = (unsigned char) s[i + 1];
    return c > ' ' && c < 0x7f && !(c >= 'a' && c <= 'z')
           && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9');
}


/* Whether s[i] starts something that cannot quantify or drop the byte
   before it: an escape other than \E and \Q (which are nothing), a class,
   any byte, a non-ASCII character, or a group that is not a comment, an
   option setting or a verb. */
static int
ag_re_next_atom(const char *s, size_t len, size_t i)
{
    switch (s[i]) {
    case '\\':
        return i + 1 < len && s[i + 1] != 'E' && s[i + 1] != 'Q';
    case '[':
    case '.':
    case '$':
        return 1;
    case '(':
        return i + 1 < len
               && (s[i + 1] != '?' || (i + 2 < len && s[i + 2] == ':'))
               && s[i + 1] != '*';
    default:
        /* in UTF mode a lead byte starts a character of its own */
        return (unsigned char) s[i] >= 0x80;
    }
}


/* The end of the class that opens at s[i] ('['): the index of its ']', or
   0 when the class is written in a way this reading does not follow. */
static size_t
ag_re_class_end(const char *s, size_t len, size_t i)
{
    size_t  j, k;

    j = i + 1;
    if (j < len && s[j] == '^') {
        j++;
    }
    if (j < len && s[j] == ']') {           /* a ']' first is a literal */
        j++;
    }
    while (j < len) {
        if (s[j] == '\\') {
            if (j + 1 >= len || s[j + 1] == 'Q' || s[j + 1] == 'E') {
                return 0;
            }
            j += 2;
            continue;
        }
        if (s[j] == '[' && j + 1 < len && s[j + 1] == ':') {
            /* [:alpha:] or [:^alpha:]; anything else makes this '[' a
               literal, and PCRE2 refuses [. and [= */
            k = j + 2;
            if (k < len && s[k] == '^') {
                k++;
            }
            while (k < len && s[k] >= 'a' && s[k] <= 'z') {
                k++;
            }
            if (k + 1 < len && s[k] == ':' && s[k + 1] == ']') {
                j = k + 2;
                continue;
            }
            return 0;
        }
        if (s[j] == ']') {
            return j;
        }
        j++;
    }
    return 0;
}


/* Whether a pattern may have a '|' outside every group (where the part
   before it would not be needed at all). When unsure: yes. */
static int
ag_re_top_alternation(const char *s, size_t len)
{
    size_t  i, j;
    long    depth;

    if (memchr(s, '|', len) == NULL) {
        return 0;
    }
    for (i = 0, depth = 0; i < len; i++) {
        switch (s[i]) {
        case '\\':
            /* \Q...\E quotes anything, \cX takes any byte as X */
            if (i + 1 >= len || s[i + 1] == 'Q' || s[i + 1] == 'c') {
                return 1;
            }
            i++;
            break;
        case '[':
            i = ag_re_class_end(s, len, i);
            if (i == 0) {
                return 1;
            }
            break;
        case '(':
            if (i + 1 < len && s[i + 1] == '*') {
                return 1;               /* verbs: a name may hold anything */
            }
            if (i + 1 < len && s[i + 1] == '?') {
                /* comments, callouts, extended classes; option letters
                   that turn on extended mode (comments to end of line) */
                if (i + 2 >= len || strchr("#C[", s[i + 2]) != NULL) {
                    return 1;
                }
                for (j = i + 2; j < len && (s[j] == '^' || s[j] == '-'
                                            || (s[j] >= 'a' && s[j] <= 'z')
                                            || (s[j] >= 'A' && s[j] <= 'Z'));
                     j++)
                {
                    if (s[j] == 'x') {
                        return 1;
                    }
                }
            }
            depth++;
            break;
        case ')':
            if (--depth < 0) {
                return 1;
            }
            break;
        case '|':
            if (depth == 0) {
                return 1;
            }
            break;
        default:
            break;
        }
    }
    return depth != 0;
}


/*
 * The literal bytes that every match of an anchored pattern starts with,
 * read conservatively from its source: plain bytes and escaped punctuation
 * up to the first anything else, less the last one when what follows could
 * repeat or drop it (a quantifier, a group that may hide "(?#...)" before
 * one, "\E"). Nothing at all when the pattern may alternate at the top.
 */
static size_t
ag_re_literal_prefix(const char *s, size_t len, char *out)
{
    size_t  i, n;
    char    c;

    n = 0;
    for (i = 0; i < len; ) {
        if (ag_re_plain((unsigned char) s[i])) {
            c = s[i++];
        } else if (ag_re_escaped(s, len, i)) {
            c = s[i + 1];
            i += 2;
        } else {
            break;
        }
        /* what comes next must leave this byte alone */
        if (i < len && !ag_re_plain((unsigned char) s[i])
            && !ag_re_next_atom(s, len, i))
        {
            break;
        }
        out[n++] = c;
    }
    return n > 0 && !ag_re_top_alternation(s, len) ? n : 0;
}


ag_regex_t *
ag_regex_compile(ag_pool_t *pool, const char *src, size_t len, char *err,
    size_t errlen)
{
    int          code;
    PCRE2_SIZE   off;
    ag_regex_t  *re;

    if (len > AG_REGEX_MAX) {
        snprintf(err, errlen, "regex longer than %d bytes", AG_REGEX_MAX);
        return NULL;
    }

    re = ag_pool_alloc(pool, sizeof(ag_regex_t));
    if (re == NULL || ag_pool_cleanup_add(pool, ag_regex_cleanup, re) != 0
        || (re->src = ag_pool_strndup(pool, src, len)) == NULL)
    {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    re->code = pcre2_compile((PCRE2_SPTR) src, len,
                             PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF,
                             &code, &off, NULL);
    if (re->code == NULL) {
        ag_regex_errmsg(code, off, err, errlen);
        return NULL;
    }

    re->lit = ag_pool_alloc(pool, len + 1);
    if (re->lit == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    re->nlit = ag_re_literal_prefix(src, len, re->lit);

    /* JIT is an optimisation: without it (no JIT on this CPU, or a pattern
       it does not support) pcre2_match interprets the pattern instead */
    (void) pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);

    re->mctx = pcre2_match_context_create(NULL);
    if (re->mctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pcre2_set_match_limit(re->mctx, AG_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, AG_REGEX_DEPTH_LIMIT);

    return re;
}


const char *
ag_regex_source(const ag_regex_t *re)
{
    return re->src;
}


size_t
ag_regex_prefix(const ag_regex_t *re, const char **p)
{
    *p = re->lit;
    return re->nlit;
}


int
ag_regex_check(const char *src, size_t len, char *err, size_t errlen)
{
    int          code;
    PCRE2_SIZE   off;
    pcre2_code  *re;

    if (len > AG_REGEX_MAX) {
        snprintf(err, errlen, "regex longer than %d bytes", AG_REGEX_MAX);
        return -1;
    }

    re = pcre2_compile((PCRE2_SPTR) src, len, PCRE2_UTF, &code, &off, NULL);
    if (re == NULL) {
        ag_regex_errmsg(code, off, err, errlen);
        return -1;
    }
    pcre2_code_free(re);
    return 0;
}


void
ag_scratch_init(ag_scratch_t *sc)
{
    memset(sc, 0, sizeof(ag_scratch_t));
}


void
ag_scratch_free(ag_scratch_t *sc)
{
    pcre2_match_data_free(sc->match_data);
    free(sc->buf);
    sc->match_data = NULL;
    sc->buf = NULL;
    sc->bufsize = 0;
}


ag_tri_t
ag_regex_match(const ag_regex_t *re, const char *s, size_t len,
    ag_scratch_t *sc)
{
    int  rc;

    if (sc->match_data == NULL) {
        /* one pair is enough: only "did it match" is read, and a match with
           more groups than pairs still returns 0, not an error */
        sc->match_data = pcre2_match_data_create(1, NULL);
        if (sc->match_data == NULL) {
            sc->failed = 1;
            return AG_DOUBT;
        }
    }

    rc = pcre2_match(re->code, (PCRE2_SPTR) (s != NULL ? s : ""), len, 0, 0,
                     sc->match_data, re->mctx);

    if (rc >= 0) {
        return AG_TRUE;
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
        return AG_FALSE;
    }
    if (rc == PCRE2_ERROR_NOMEMORY) {
        sc->failed = 1;
    }
    /* match or depth limit, JIT stack exhausted, invalid UTF-8 in the value */
    return AG_DOUBT;
}


/* --- JSON pointers ----------------------------------------------------------------- */

typedef struct {
    const char  *s;
    size_t       len;
    long         idx;       /* canonical array index, or -1 */
} ag_jptr_tok_t;

struct ag_jptr_s {
    ag_jptr_tok_t  *tok;
    size_t          n;
};


static long
ag_jptr_index(const char *s, size_t len)
{
    size_t  i;
    long    v;

    if (len == 0 || len > 9 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    v = 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}


/* Unescape one token into out (at most len bytes); -1 on a bad '~'. */
static long
ag_jptr_unescape(const char *s, size_t len, char *out)
{
    size_t  i, o;

    for (i = 0, o = 0; i < len; i++) {
        if (s[i] != '~') {
            out[o++] = s[i];
            continue;
        }
        if (i + 1 == len || (s[i + 1] != '0' && s[i + 1] != '1')) {
            return -1;
        }
        out[o++] = s[++i] == '0' ? '~' : '/';
    }
    return (long) o;
}


ag_jptr_t *
ag_jptr_compile(ag_pool_t *pool, const char *s, size_t len, char *err,
    size_t errlen)
{
    size_t      i, n, start;
    long        o;
    char       *buf;
    ag_jptr_t  *p;

    if (len != 0 && s[0] != '/') {
        snprintf(err, errlen, "a JSON pointer is empty or starts with '/'");
        return NULL;
    }

    for (i = 0, n = 0; i < len; i++) {
        n += (s[i] == '/');
    }

    p = ag_pool_alloc(pool, sizeof(ag_jptr_t));
    buf = ag_pool_alloc(pool, len + 1);
    if (p == NULL || buf == NULL
        || (p->tok = ag_pool_alloc(pool, (n + 1) * sizeof(ag_jptr_tok_t)))
           == NULL)
    {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    for (i = 1, start = 1; i <= len; i++) {
        if (i < len && s[i] != '/') {
            continue;
        }
        o = ag_jptr_unescape(s + start, i - start, buf);
        if (o < 0) {
            snprintf(err, errlen, "bad escape in JSON pointer "
                     "(only ~0 and ~1)");
            return NULL;
        }
        p->tok[p->n].s = buf;
        p->tok[p->n].len = (size_t) o;
        p->tok[p->n].idx = ag_jptr_index(buf, (size_t) o);
        p->n++;
        buf += o + 1;
        start = i + 1;
    }

    return p;
}


static json_t *
ag_jptr_step(json_t *v, const char *s, size_t len, long idx)
{
    if (json_is_object(v)) {
        return json_object_getn(v, s, len);
    }
    if (json_is_array(v) && idx >= 0) {
        return json_array_get(v, (size_t) idx);
    }
    return NULL;
}


json_t *
ag_jptr_get(const ag_jptr_t *p, json_t *doc)
{
    size_t  i;

    for (i = 0; doc != NULL && i < p->n; i++) {
        doc = ag_jptr_step(doc, p->tok[i].s, p->tok[i].len, p->tok[i].idx);
    }
    return doc;
}


/* --- call accessors -------------------------------------------------------------- */

static int
ag_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}


static int
ag_caseeq(const char *a, const char *b, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (ag_lower((unsigned char) a[i]) != ag_lower((unsigned char) b[i])) {
            return 0;
        }
    }
    return 1;
}


int
ag_call_header(const ag_call_t *call, const char *name, size_t len,
    ag_str_t *v)
{
    size_t  i;
    int     n;

    n = 0;
    for (i = 0; i < call->nheaders; i++) {
        const ag_header_t  *h = &call->headers[i];

        if (h->name.len == len && ag_caseeq(h->name.p, name, len)) {
            if (n++ == 0) {
                *v = h->value;
            } else {
                return 2;
            }
        }
    }
    return n;
}


/* The next decoded byte of in[*i..len); -1 on a bad escape. */
static int
ag_pct_next(const char *in, size_t len, size_t *i)
{
    int  h, l;
    int  c = (unsigned char) in[*i];

    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c != '%') {
        (*i)++;
        return c;
    }
    if (*i + 2 >= len) {
        return -1;
    }
    h = ag_hex_digit((unsigned char) in[*i + 1]);
    l = ag_hex_digit((unsigned char) in[*i + 2]);
    if (h < 0 || l < 0) {
        return -1;
    }
    *i += 3;
    return h * 16 + l;
}


int
ag_pct_decode(const char *in, size_t len, char *out, size_t *outlen)
{
    size_t  i, o;
    int     c;

    for (i = 0, o = 0; i < len; o++) {
        c = ag_pct_next(in, len, &i);
        if (c < 0) {
            return -1;
        }
        out[o] = (char) c;
    }
    *outlen = o;
    return 0;
}


/* Whether the encoded raw name decodes to name: 1, 0, or -1 bad escape. */
static int
ag_pct_eq(const char *raw, size_t rlen, const char *name, size_t nlen)
{
    size_t  i, o;
    int     c, eq;

    eq = 1;
    for (i = 0, o = 0; i < rlen; o++) {
        c = ag_pct_next(raw, rlen, &i);
        if (c < 0) {
            return -1;
        }
        if (o >= nlen || (unsigned char) name[o] != c) {
            eq = 0;    /* keep going: a bad escape later still counts */
        }
    }
    return eq && o == nlen;
}


int
ag_call_query(const ag_call_t *call, const char *name, size_t len, char *buf,
    ag_str_t *v)
{
    const char  *q, *end, *seg, *eq, *val;
    size_t       vlen, olen;
    int          found, r;

    q = call->query.p;
    end = q ? q + call->query.len : NULL;
    found = 0;
    val = NULL;
    vlen = 0;

    while (q != NULL && q < end) {
        seg = memchr(q, '&', (size_t) (end - q));
        if (seg == NULL) {
            seg = end;
        }
        if (seg != q) {
            eq = memchr(q, '=', (size_t) (seg - q));
            r = ag_pct_eq(q, (size_t) ((eq ? eq : seg) - q), name, len);
            if (r < 0) {
                return -1;
            }
            if (r == 1 && found++ == 0) {
                val = eq ? eq + 1 : seg;
                vlen = (size_t) (seg - val);
            }
        }
        q = seg + 1;
    }

    if (found != 1) {
        return found == 0 ? 0 : 2;
    }
    if (ag_pct_decode(val, vlen, buf, &olen) != 0) {
        return -1;
    }
    v->p = buf;
    v->len = olen;
    return 1;
}


int
ag_has_dotdot(const char *s, size_t len)
{
    size_t  i, start;

    for (i = 0, start = 0; i <= len; i++) {
        if (i < len && s[i] != '/' && s[i] != '\\') {
            continue;
        }
        if (i - start == 2 && s[start] == '.' && s[start + 1] == '.') {
            return 1;
        }
        start = i + 1;
    }
    return 0;
}


#define AG_DECIMAL_MAX_DIGITS  40


int
ag_decimal_parse(const char *s, size_t len, int *is_int, int64_t *iv,
    double *dv)
{
    size_t    i, digits, frac;
    int       neg, dot;
    uint64_t  u;
    double    d, scale;

    neg = (len > 0 && s[0] == '-');
    i = (size_t) neg;
    digits = 0;
    frac = 0;
    dot = 0;
    u = 0;
    d = 0;

    for (; i < len; i++) {
        if (s[i] == '.' && !dot && digits > 0) {
            dot = 1;
            continue;
        }
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        digits++;
        frac += dot;
        if (u <= (UINT64_MAX - 9) / 10) {
            u = u * 10 + (uint64_t) (s[i] - '0');
        }
        d = d * 10 + (s[i] - '0');
    }

    /*
     * A number no rule could mean: past 40 digits a double becomes inf or
     * NaN, which compares as nothing sensible. It is doubt, not a number.
     */
    if (digits == 0 || (dot && frac == 0) || digits > AG_DECIMAL_MAX_DIGITS) {
        return -1;
    }

    if (!dot && digits <= 18) {
        *is_int = 1;
        *iv = neg ? -(int64_t) u : (int64_t) u;
        return 0;
    }

    /* one division by an exact power of ten rounds correctly for the values
       people write; longer ones are approximate, as in any JSON reader */
    for (scale = 1; frac > 0; frac--) {
        scale *= 10;
    }
    *is_int = 0;
    *dv = (neg ? -d : d) / scale;
    return 0;
}


/* --- "when" trees ------------------------------------------------------------------ */

enum {
    AG_W_ALL = 0,
    AG_W_ANY,
    AG_W_NOT,
    AG_W_SUBJ,
    AG_W_TIME
};

enum {
    AG_S_HEADER = 0,
    AG_S_QUERY,
    AG_S_BODY,
    AG_S_ARGS,
    AG_S_CHAIN,
    AG_S_DEPTH
};

enum {
    AG_OP_EQ = 0,
    AG_OP_NE,
    AG_OP_IN,
    AG_OP_GLOB,
    AG_OP_REGEX,
    AG_OP_GT,
    AG_OP_GE,
    AG_OP_LT,
    AG_OP_LE,
    AG_OP_EXISTS,
    AG_OP_N
};

static const char *ag_op_names[AG_OP_N] = {
    "eq", "ne", "in", "glob", "regex", "gt", "ge", "lt", "le", "exists"
};

static const char *ag_day_names[7] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat"
};

typedef struct {
    int          is_int;
    int64_t      i;
    double       d;
} ag_num_t;

typedef struct {
    int          op;
    json_t      *val;       /* the operand as written (borrowed) */
    ag_num_t     num;
    ag_glob_t   *glob;
    ag_regex_t  *re;
} ag_wop_t;

struct ag_when_s {
    int          kind;
    ag_when_t  **kids;
    size_t       nkids;

    const char  *key;       /* the subject as written */
    int          subj;
    const char  *name;      /* header (lower case) or query parameter */
    size_t       namelen;
    ag_jptr_t   *ptr;
    ag_wop_t    *ops;
    size_t       nops;

    unsigned     days;      /* bit 0 is Sunday */
    int          from;      /* minutes of the day; -1: any time of day */
    int          to;
};


static ag_when_t *ag_when_object(ag_compile_t *c, json_t *v, int depth);


static int
ag_is_token_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9')
           || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}


static int
ag_when_scalar(json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v)
           || json_is_null(v);
}


static void
ag_num_from_json(json_t *v, ag_num_t *n)
{
    n->is_int = json_is_integer(v);
    n->i = n->is_int ? (int64_t) json_integer_value(v) : 0;
    n->d = n->is_int ? 0 : json_real_value(v);
}


static int
ag_when_op_applies(ag_compile_t *c, const ag_when_t *w, int op)
{
    if (w->subj == AG_S_DEPTH && (op == AG_OP_GLOB || op == AG_OP_REGEX)) {
        return ag_cerror(c, "not for depth, which is an integer");
    }
    if (w->subj == AG_S_CHAIN && op >= AG_OP_GT && op <= AG_OP_LE) {
        return ag_cerror(c, "not for chain, which is a string");
    }
    return 0;
}


static int
ag_when_operand(ag_compile_t *c, ag_wop_t *op, json_t *v)
{
    size_t   i;
    char     perr[256];
    json_t  *e;

    switch (op->op) {
    case AG_OP_EQ:
    case AG_OP_NE:
        if (!ag_when_scalar(v)) {
            return ag_cerror(c, "expected a string, number, boolean or null");
        }
        return 0;
    case AG_OP_IN:
        if (!json_is_array(v) || json_array_size(v) == 0) {
            return ag_cerror(c, "expected a non-empty array");
        }
        json_array_foreach(v, i, e) {
            if (!ag_when_scalar(e)) {
                (void) ag_cpush_index(c, i);
                return ag_cerror(c, "expected a string, number, boolean or "
                                 "null");
            }
        }
        return 0;
    case AG_OP_GLOB:
    case AG_OP_REGEX:
        if (!json_is_string(v)) {
            return ag_cerror(c, "expected a string");
        }
        if (op->op == AG_OP_GLOB) {
            op->glob = ag_glob_compile(c->pool, json_string_value(v),
                                       json_string_length(v), perr,
                                       sizeof(perr));
        } else {
            op->re = ag_regex_compile(c->pool, json_string_value(v),
                                      json_string_length(v), perr,
                                      sizeof(perr));
        }
        if (op->glob == NULL && op->re == NULL) {
            return ag_cerror(c, "%s", perr);
        }
        return 0;
    case AG_OP_EXISTS:
        if (!json_is_boolean(v)) {
            return ag_cerror(c, "expected true or false");
        }
        return 0;
    default:
        if (!json_is_number(v)) {
            return ag_cerror(c, "expected a number");
        }
        ag_num_from_json(v, &op->num);
        return 0;
    }
}


static int
ag_when_ops(ag_compile_t *c, ag_when_t *w, json_t *v)
{
    const char  *key;
    json_t      *val;
    size_t       old, k;
    int          op;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        return ag_cerror(c, "expected an object of operators (eq, ne, in, "
                         "glob, regex, gt, ge, lt, le, exists)");
    }

    w->ops = ag_pool_alloc(c->pool, json_object_size(v) * sizeof(ag_wop_t));
    if (w->ops == NULL) {
        return ag_cerror(c, "out of memory");
    }

    json_object_foreach(v, key, val) {
        old = ag_cpush(c, key);
        for (op = 0; op < AG_OP_N && strcmp(key, ag_op_names[op]) != 0; op++) {
            /* void */
        }
        if (op == AG_OP_N) {
            return ag_cerror(c, "unknown operator (expected eq, ne, in, glob, "
                             "regex, gt, ge, lt, le or exists)");
        }
        if (ag_when_op_applies(c, w, op) != 0) {
            return -1;
        }
        k = w->nops++;
        w->ops[k].op = op;
        w->ops[k].val = val;
        if (ag_when_operand(c, &w->ops[k], val) != 0) {
            return -1;
        }
        ag_cpop(c, old);
    }

    return 0;
}


static int
ag_when_name(ag_compile_t *c, ag_when_t *w, const char *name, int header)
{
    size_t  i, len;
    char   *n;

    len = strlen(name);
    if (len == 0) {
        return ag_cerror(c, "a %s name is required after ':'",
                         header ? "header" : "query parameter");
    }

    n = ag_pool_strndup(c->pool, name, len);
    if (n == NULL) {
        return ag_cerror(c, "out of memory");
    }

    for (i = 0; header && i < len; i++) {
        if (!ag_is_token_char((unsigned char) n[i])) {
            return ag_cerror(c, "invalid header name");
        }
        n[i] = (char) ag_lower((unsigned char) n[i]);
    }

    w->name = n;
    w->namelen = len;
    return 0;
}


static ag_when_t *
ag_when_subject(ag_compile_t *c, const char *key, json_t *v)
{
    char        perr[256];
    ag_when_t  *w;
    int         rc;

    w = ag_pool_alloc(c->pool, sizeof(ag_when_t));
    if (w == NULL || (w->key = ag_pool_strndup(c->pool, key, strlen(key)))
                     == NULL)
    {
        ag_cerror(c, "out of memory");
        return NULL;
    }
    w->kind = AG_W_SUBJ;
    rc = 0;

    if (strcmp(key, "chain") == 0) {
        w->subj = AG_S_CHAIN;
    } else if (strcmp(key, "depth") == 0) {
        w->subj = AG_S_DEPTH;
    } else if (strncmp(key, "header:", 7) == 0) {
        w->subj = AG_S_HEADER;
        rc = ag_when_name(c, w, key + 7, 1);
    } else if (strncmp(key, "query:", 6) == 0) {
        w->subj = AG_S_QUERY;
        rc = ag_when_name(c, w, key + 6, 0);
    } else if (strncmp(key, "body:", 5) == 0 || strncmp(key, "args:", 5) == 0) {
        w->subj = key[0] == 'b' ? AG_S_BODY : AG_S_ARGS;
        w->ptr = ag_jptr_compile(c->pool, key + 5, strlen(key + 5), perr,
                                 sizeof(perr));
        rc = w->ptr == NULL ? ag_cerror(c, "%s", perr) : 0;
    } else {
        ag_cerror(c, "unknown condition (expected all, any, not, time, chain, "
                  "depth, header:<name>, query:<name>, body:<pointer> or "
                  "args:<pointer>)");
        return NULL;
    }

    if (rc != 0 || ag_when_ops(c, w, v) != 0) {
        return NULL;
    }
    return w;
}


static int
ag_when_hhmm(const char *s, int max)
{
    int  h, m;

    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] != ':'
        || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
    {
        return -1;
    }
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    return (h * 60 + m > max) ? -1 : h * 60 + m;
}


static int
ag_when_hours(ag_compile_t *c, ag_when_t *w, json_t *v)
{
    const char  *s;

    s = json_string_value(v);
    if (s == NULL || json_string_length(v) != 11 || s[5] != '-'
        || (w->from = ag_when_hhmm(s, 23 * 60 + 59)) < 0
        || (w->to = ag_when_hhmm(s + 6, 24 * 60)) < 0)
    {
        return ag_cerror(c, "expected \"HH:MM-HH:MM\" (UTC, 00:00 to 24:00)");
    }
    if (w->from == w->to) {
        return ag_cerror(c, "empty time window");
    }
    return 0;
}


static int
ag_when_days(ag_compile_t *c, ag_when_t *w, json_t *v)
{
    size_t   i, old;
    int      d;
    json_t  *e;

    if (!json_is_array(v) || json_array_size(v) == 0) {
        return ag_cerror(c, "expected a non-empty array of days");
    }

    w->days = 0;
    json_array_foreach(v, i, e) {
        old = ag_cpush_index(c, i);
        for (d = 0; d < 7; d++) {
            if (json_is_string(e) && strcmp(json_string_value(e),
                                            ag_day_names[d]) == 0)
            {
                break;
            }
        }
        if (d == 7) {
            return ag_cerror(c, "expected one of mon, tue, wed, thu, fri, "
                             "sat, sun");
        }
        if (w->days & (1u << d)) {
            return ag_cerror(c, "duplicate day");
        }
        w->days |= 1u << d;
        ag_cpop(c, old);
    }
    return 0;
}


static ag_when_t *
ag_when_time(ag_compile_t *c, json_t *v)
{
    const char  *key;
    json_t      *val;
    size_t       old;
    ag_when_t   *w;
    int          rc;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        ag_cerror(c, "expected an object with days, hours or both");
        return NULL;
    }

    w = ag_pool_alloc(c->pool, sizeof(ag_when_t));
    if (w == NULL) {
        ag_cerror(c, "out of memory");
        return NULL;
    }
    w->kind = AG_W_TIME;
    w->key = "time";
    w->days = 0x7f;
    w->from = -1;

    json_object_foreach(v, key, val) {
        old = ag_cpush(c, key);
        if (strcmp(key, "days") == 0) {
            rc = ag_when_days(c, w, val);
        } else if (strcmp(key, "hours") == 0) {
            rc = ag_when_hours(c, w, val);
        } else {
            rc = ag_cerror(c, "unknown key (expected days or hours)");
        }
        if (rc != 0) {
            return NULL;
        }
        ag_cpop(c, old);
    }

    return w;
}


static ag_when_t *
ag_when_combinator(ag_compile_t *c, const char *key, json_t *v, int depth)
{
    size_t      i, old;
    json_t     *e;
    ag_when_t  *w;

    if (depth + 1 > AG_WHEN_MAX_DEPTH) {
        ag_cerror(c, "nesting too deep (more than %d levels of all, any and "
                  "not)", AG_WHEN_MAX_DEPTH);
        return NULL;
    }

    w = ag_pool_alloc(c->pool, sizeof(ag_when_t));
    if (w == NULL) {
        ag_cerror(c, "out of memory");
        return NULL;
    }

    if (strcmp(key, "not") == 0) {
        w->kind = AG_W_NOT;
        w->nkids = 1;
        w->kids = ag_pool_alloc(c->pool, sizeof(ag_when_t *));
        if (w->kids == NULL || (w->kids[0] = ag_when_object(c, v, depth + 1))
                               == NULL)
        {
            return NULL;
        }
        return w;
    }

    w->kind = key[1] == 'l' ? AG_W_ALL : AG_W_ANY;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        ag_cerror(c, "expected a non-empty array of conditions");
        return NULL;
    }
    w->kids = ag_pool_alloc(c->pool, json_array_size(v) * sizeof(ag_when_t *));
    if (w->kids == NULL) {
        ag_cerror(c, "out of memory");
        return NULL;
    }
    json_array_foreach(v, i, e) {
        old = ag_cpush_index(c, i);
        w->kids[i] = ag_when_object(c, e, depth + 1);
        if (w->kids[i] == NULL) {
            return NULL;
        }
        ag_cpop(c, old);
    }
    w->nkids = json_array_size(v);
    return w;
}


static ag_when_t *
ag_when_member(ag_compile_t *c, const char *key, json_t *v, int depth)
{
    if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0
        || strcmp(key, "not") == 0)
    {
        return ag_when_combinator(c, key, v, depth);
    }
    if (strcmp(key, "time") == 0) {
        return ag_when_time(c, v);
    }
    return ag_when_subject(c, key, v);
}


/* An object of conditions: all of its members must hold. */
static ag_when_t *
ag_when_object(ag_compile_t *c, json_t *v, int depth)
{
    const char  *key;
    json_t      *val;
    size_t       old, n;
    ag_when_t   *w;

    if (!json_is_object(v) || json_object_size(v) == 0) {
        ag_cerror(c, "expected an object with at least one condition");
        return NULL;
    }

    w = ag_pool_alloc(c->pool, sizeof(ag_when_t));
    if (w == NULL
        || (w->kids = ag_pool_alloc(c->pool, json_object_size(v)
                                             * sizeof(ag_when_t *))) == NULL)
    {
        ag_cerror(c, "out of memory");
        return NULL;
    }
    w->kind = AG_W_ALL;

    n = 0;
    json_object_foreach(v, key, val) {
        old = ag_cpush(c, key);
        w->kids[n] = ag_when_member(c, key, val, depth);
        if (w->kids[n++] == NULL) {
            return NULL;
        }
        ag_cpop(c, old);
    }
    w->nkids = n;

    return n == 1 ? w->kids[0] : w;
}


ag_when_t *
ag_when_compile(ag_compile_t *c, json_t *v)
{
    return ag_when_object(c, v, 0);
}


int
ag_when_reads_body(const ag_when_t *w)
{
    size_t  i;

    if (w->kind == AG_W_SUBJ) {
        return w->subj == AG_S_BODY || w->subj == AG_S_ARGS;
    }
    for (i = 0; i < w->nkids; i++) {
        if (ag_when_reads_body(w->kids[i])) {
            return 1;
        }
    }
    return 0;
}


static size_t
ag_when_collect(const ag_when_t *w, const char **out, size_t n, size_t max)
{
    size_t  i;

    if (w->kind == AG_W_TIME) {
        return n;               /* the clock is not a value of the call */
    }
    if (w->kind == AG_W_SUBJ) {
        for (i = 0; i < n; i++) {
            if (strcmp(out[i], w->key) == 0) {
                return n;
            }
        }
        if (n < max) {
            out[n++] = w->key;
        }
        return n;
    }
    for (i = 0; i < w->nkids; i++) {
        n = ag_when_collect(w->kids[i], out, n, max);
    }
    return n;
}


size_t
ag_when_subjects(const ag_when_t *w, const char **out, size_t max)
{
    return ag_when_collect(w, out, 0, max);
}


/* --- evaluation -------------------------------------------------------------------- */

enum {
    AG_V_STR = 0,
    AG_V_NUM,
    AG_V_BOOL,
    AG_V_NULL,
    AG_V_OTHER
};

/* A subject's value in a call, resolved once for all of its operators. */
typedef struct {
    ag_tri_t     exists;
    const char  *doubt;     /* set: every operator but exists is DOUBT */
    int          type;
    int          http;      /* header or query text: numbers are read from it */
    ag_str_t     s;
    ag_num_t     num;
    int          b;
} ag_val_t;


static void
ag_val_json(ag_val_t *v, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_STRING:
        v->type = AG_V_STR;
        v->s.p = json_string_value(j);
        v->s.len = json_string_length(j);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        v->type = AG_V_NUM;
        ag_num_from_json(j, &v->num);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v->type = AG_V_BOOL;
        v->b = json_is_true(j);
        break;
    case JSON_NULL:
        v->type = AG_V_NULL;
        break;
    default:
        v->type = AG_V_OTHER;
        break;
    }
}


static void
ag_val_query(const ag_when_t *w, const ag_call_t *call, ag_scratch_t *sc,
    ag_val_t *v)
{
    char  *nb;

    if (sc->bufsize < call->query.len + 1) {
        nb = realloc(sc->buf, call->query.len + 1);
        if (nb == NULL) {
            sc->failed = 1;
            v->exists = AG_DOUBT;
            v->doubt = "out of memory";
            return;
        }
        sc->buf = nb;
        sc->bufsize = call->query.len + 1;
    }

    switch (ag_call_query(call, w->name, w->namelen, sc->buf, &v->s)) {
    case 0:
        v->exists = AG_FALSE;
        v->doubt = "missing";
        break;
    case 2:
        v->doubt = "repeated query parameter";
        break;
    case -1:
        v->exists = AG_DOUBT;
        v->doubt = "bad percent-encoding in the query";
        break;
    default:
        v->http = 1;
        break;
    }
}


static void
ag_val_resolve(const ag_when_t *w, const ag_call_t *call, ag_scratch_t *sc,
    ag_val_t *v)
{
    json_t  *doc, *j;

    memset(v, 0, sizeof(ag_val_t));
    v->exists = AG_TRUE;
    v->type = AG_V_STR;

    switch (w->subj) {
    case AG_S_HEADER:
        switch (ag_call_header(call, w->name, w->namelen, &v->s)) {
        case 0:
            v->exists = AG_FALSE;
            v->doubt = "missing";
            break;
        case 2:
            v->doubt = "repeated header";
            break;
        default:
            v->http = 1;
            break;
        }
        break;
    case AG_S_QUERY:
        ag_val_query(w, call, sc, v);
        break;
    case AG_S_BODY:
    case AG_S_ARGS:
        doc = w->subj == AG_S_BODY ? call->body : call->mcp_args;
        j = doc != NULL ? ag_jptr_get(w->ptr, doc) : NULL;
        if (j == NULL) {
            v->exists = AG_FALSE;
            v->doubt = "missing";
        } else {
            ag_val_json(v, j);
        }
        break;
    case AG_S_CHAIN:
        v->s = call->chain;
        break;
    default:
        v->type = AG_V_NUM;
        v->num.is_int = 1;
        v->num.i = call->depth;
        break;
    }

    if (v->doubt == NULL && v->type == AG_V_STR
        && ag_has_dotdot(v->s.p, v->s.len))
    {
        v->doubt = "a path with a '..' segment";
    }
}


static int
ag_val_num(const ag_val_t *v, ag_num_t *n)
{
    if (v->type == AG_V_NUM) {
        *n = v->num;
        return 0;
    }
    if (v->type == AG_V_STR && v->http) {
        return ag_decimal_parse(v->s.p, v->s.len, &n->is_int, &n->i, &n->d);
    }
    return -1;
}


static int
ag_num_cmp(const ag_num_t *a, const ag_num_t *b)
{
    double  x, y;

    if (a->is_int && b->is_int) {
        return a->i < b->i ? -1 : (a->i > b->i);
    }
    x = a->is_int ? (double) a->i : a->d;
    y = b->is_int ? (double) b->i : b->d;
    return x < y ? -1 : (x > y);
}


static ag_tri_t
ag_eq(json_t *x, const ag_val_t *v, const char **why)
{
    ag_num_t  n, xn;

    switch (json_typeof(x)) {
    case JSON_STRING:
        if (v->type != AG_V_STR) {
            *why = "not a string";
            return AG_DOUBT;
        }
        return v->s.len == json_string_length(x)
               && (v->s.len == 0
                   || memcmp(v->s.p, json_string_value(x), v->s.len) == 0);
    case JSON_INTEGER:
    case JSON_REAL:
        if (ag_val_num(v, &n) != 0) {
            *why = "not a number";
            return AG_DOUBT;
        }
        ag_num_from_json(x, &xn);
        return ag_num_cmp(&n, &xn) == 0;
    case JSON_TRUE:
    case JSON_FALSE:
        if (v->type != AG_V_BOOL) {
            *why = "not a boolean";
            return AG_DOUBT;
        }
        return v->b == json_is_true(x);
    default:
        if (v->type != AG_V_NULL) {
            *why = "not null";
            return AG_DOUBT;
        }
        return AG_TRUE;
    }
}


static ag_tri_t
ag_in(json_t *list, const ag_val_t *v, const char **why)
{
    size_t    i;
    json_t   *e;
    ag_tri_t  r, t;

    /* Kleene "or" of eq over the list */
    r = AG_FALSE;
    json_array_foreach(list, i, e) {
        t = ag_eq(e, v, why);
        if (t == AG_TRUE) {
            return AG_TRUE;
        }
        if (t == AG_DOUBT) {
            r = AG_DOUBT;
        }
    }
    return r;
}


static ag_tri_t
ag_cmp(const ag_wop_t *op, const ag_val_t *v, const char **why)
{
    ag_num_t  n;
    int       c;

    if (ag_val_num(v, &n) != 0) {
        *why = "not a number";
        return AG_DOUBT;
    }
    c = ag_num_cmp(&n, &op->num);
    switch (op->op) {
    case AG_OP_GT:
        return c > 0;
    case AG_OP_GE:
        return c >= 0;
    case AG_OP_LT:
        return c < 0;
    default:
        return c <= 0;
    }
}


static ag_tri_t
ag_op_eval(const ag_wop_t *op, const ag_val_t *v, ag_scratch_t *sc,
    const char **why)
{
    ag_tri_t  t;

    if (op->op == AG_OP_EXISTS) {
        *why = v->doubt;
        return json_is_true(op->val) ? v->exists : ag_tri_not(v->exists);
    }
    if (v->doubt != NULL) {
        *why = v->doubt;
        return AG_DOUBT;
    }

    switch (op->op) {
    case AG_OP_EQ:
        return ag_eq(op->val, v, why);
    case AG_OP_NE:
        return ag_tri_not(ag_eq(op->val, v, why));
    case AG_OP_IN:
        return ag_in(op->val, v, why);
    case AG_OP_GLOB:
    case AG_OP_REGEX:
        if (v->type != AG_V_STR) {
            *why = "not a string";
            return AG_DOUBT;
        }
        if (op->op == AG_OP_GLOB) {
            return ag_glob_match(op->glob, v->s.p, v->s.len) ? AG_TRUE
                                                              : AG_FALSE;
        }
        t = ag_regex_match(op->re, v->s.p, v->s.len, sc);
        if (t == AG_DOUBT) {
            *why = "regex match limit or error";
        }
        return t;
    default:
        return ag_cmp(op, v, why);
    }
}


/* Trace text for the operator that decided a subject's result; subject:
   the doubt is the subject's own (missing, repeated, ...), not the
   operator's. */
static void
ag_why_op(ag_scratch_t *sc, const ag_when_t *w, const ag_wop_t *op,
    ag_tri_t t, const char *reason, int subject)
{
    char        *operand;
    const char  *note;

    operand = json_dumps(op->val, JSON_ENCODE_ANY | JSON_COMPACT);
    note = sc->doubt_note ? sc->doubt_note : "doubt";

    if (t == AG_FALSE) {
        snprintf(sc->why, sc->whylen, "when %s %s %s: false", w->key,
                 ag_op_names[op->op], operand ? operand : "?");
    } else if (subject) {
        snprintf(sc->why, sc->whylen, "when %s: %s (%s)", w->key, reason,
                 note);
    } else {
        snprintf(sc->why, sc->whylen, "when %s %s %s: %s (%s)", w->key,
                 ag_op_names[op->op], operand ? operand : "?",
                 reason ? reason : "doubt", note);
    }

    free(operand);
}


static ag_tri_t
ag_subj_eval(const ag_when_t *w, const ag_call_t *call, ag_scratch_t *sc)
{
    size_t          i;
    ag_val_t        v;
    ag_tri_t        r, t;
    const char     *why, *dwhy;
    const ag_wop_t *dop;

    ag_val_resolve(w, call, sc, &v);

    r = AG_TRUE;
    dop = NULL;
    dwhy = NULL;
    for (i = 0; i < w->nops; i++) {
        why = NULL;
        t = ag_op_eval(&w->ops[i], &v, sc, &why);
        if (t == AG_FALSE) {
            if (sc->why != NULL) {
                ag_why_op(sc, w, &w->ops[i], t, why, 0);
            }
            return AG_FALSE;
        }
        if (t == AG_DOUBT && r == AG_TRUE) {
            r = AG_DOUBT;
            dop = &w->ops[i];
            dwhy = why;
        }
    }

    if (r == AG_DOUBT && sc->why != NULL) {
        ag_why_op(sc, w, dop, r, dwhy, dwhy != NULL && dwhy == v.doubt);
    }
    return r;
}


static ag_tri_t
ag_time_eval(const ag_when_t *w, int64_t now, ag_scratch_t *sc)
{
    int64_t  days, sec;
    int      dow, min;

    days = now / 86400;
    sec = now % 86400;
    if (sec < 0) {
        sec += 86400;
        days--;
    }
    dow = (int) (((days % 7) + 7 + 4) % 7);     /* 1970-01-01 was a Thursday */
    min = (int) (sec / 60);

    if (w->from >= 0) {
        if (w->from < w->to) {
            if (min < w->from || min >= w->to) {
                goto outside;
            }
        } else if (min < w->to) {
            /* a window that wraps midnight belongs to the day it starts on */
            dow = (dow + 6) % 7;
        } else if (min < w->from) {
            goto outside;
        }
    }

    if (w->days & (1u << dow)) {
        return AG_TRUE;
    }

outside:
    if (sc->why != NULL) {
        snprintf(sc->why, sc->whylen, "when time: outside the window (%s "
                 "%02d:%02d UTC)", ag_day_names[((days % 7) + 11) % 7],
                 min / 60, min % 60);
    }
    return AG_FALSE;
}


/* Evaluate children without traces, then trace only the one that decided,
   so a trace costs at most the tree's size times its depth. */
static ag_tri_t
ag_list_eval(const ag_when_t *w, const ag_call_t *call, ag_scratch_t *sc)
{
    size_t    i, decisive;
    char     *why;
    ag_tri_t  r, t, stop;

    why = sc->why;
    sc->why = NULL;

    stop = w->kind == AG_W_ALL ? AG_FALSE : AG_TRUE;
    r = w->kind == AG_W_ALL ? AG_TRUE : AG_FALSE;
    decisive = 0;

    for (i = 0; i < w->nkids; i++) {
        t = ag_when_eval(w->kids[i], call, sc);
        if (t == stop) {
            r = t;
            decisive = i;
            break;
        }
        if (t == AG_DOUBT && r != AG_DOUBT) {
            r = AG_DOUBT;
            decisive = i;
        }
    }

    sc->why = why;
    if (why != NULL && r != AG_TRUE) {
        (void) ag_when_eval(w->kids[decisive], call, sc);
    }
    return r;
}


ag_tri_t
ag_when_eval(const ag_when_t *w, const ag_call_t *call, ag_scratch_t *sc)
{
    ag_tri_t  t;

    switch (w->kind) {
    case AG_W_ALL:
    case AG_W_ANY:
        return ag_list_eval(w, call, sc);
    case AG_W_NOT:
        t = ag_tri_not(ag_when_eval(w->kids[0], call, sc));
        if (t == AG_FALSE && sc->why != NULL) {
            snprintf(sc->why, sc->whylen, "when not: the inner condition "
                     "holds");
        }
        return t;
    case AG_W_TIME:
        return ag_time_eval(w, call->now, sc);
    default:
        return ag_subj_eval(w, call, sc);
    }
}


/* --- subject values for display ------------------------------------------------------- */

static json_t *
ag_json_strn(const char *s, size_t len)
{
    return json_stringn_nocheck(s != NULL ? s : "", len);
}


static json_t *
ag_value_header(const ag_call_t *call, const char *name, size_t len)
{
    size_t   i;
    json_t  *a, *one;

    a = json_array();
    for (i = 0; a != NULL && i < call->nheaders; i++) {
        const ag_header_t  *h = &call->headers[i];

        if (h->name.len == len && ag_caseeq(h->name.p, name, len)) {
            json_array_append_new(a, ag_json_strn(h->value.p, h->value.len));
        }
    }
    if (a == NULL || json_array_size(a) != 1) {
        if (a != NULL && json_array_size(a) == 0) {
            json_decref(a);
            return NULL;
        }
        return a;
    }
    one = json_incref(json_array_get(a, 0));
    json_decref(a);
    return one;
}


static json_t *
ag_value_query(const ag_call_t *call, const char *name, size_t len)
{
    const char  *q, *end, *seg, *eq, *val;
    char        *buf;
    size_t       olen;
    json_t      *a, *one;

    buf = malloc(call->query.len + 1);
    a = json_array();
    if (buf == NULL || a == NULL) {
        free(buf);
        json_decref(a);
        return NULL;
    }

    q = call->query.p;
    end = q ? q + call->query.len : NULL;
    while (q != NULL && q < end) {
        seg = memchr(q, '&', (size_t) (end - q));
        seg = seg ? seg : end;
        eq = memchr(q, '=', (size_t) (seg - q));
        if (seg != q && ag_pct_eq(q, (size_t) ((eq ? eq : seg) - q), name,
                                  len) == 1)
        {
            val = eq ? eq + 1 : seg;
            if (ag_pct_decode(val, (size_t) (seg - val), buf, &olen) == 0) {
                /* a decoded value may be any bytes: only valid UTF-8 shows */
                json_array_append_new(a, json_stringn(buf, olen));
            }
        }
        q = seg + 1;
    }
    free(buf);

    if (json_array_size(a) == 1) {
        one = json_incref(json_array_get(a, 0));
        json_decref(a);
        return one;
    }
    if (json_array_size(a) == 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}


static json_t *
ag_value_pointer(json_t *doc, const char *s, size_t len)
{
    ag_pool_t  *pool;
    ag_jptr_t  *p;
    json_t     *v;
    char        err[128];

    if (doc == NULL || (pool = ag_pool_create()) == NULL) {
        return NULL;
    }
    p = ag_jptr_compile(pool, s, len, err, sizeof(err));
    v = p != NULL ? ag_jptr_get(p, doc) : NULL;
    ag_pool_destroy(pool);
    return json_incref(v);
}


json_t *
ag_subject_value(const ag_call_t *call, const char *key, size_t len)
{
    if (len == 5 && memcmp(key, "chain", 5) == 0) {
        return ag_json_strn(call->chain.p, call->chain.len);
    }
    if (len == 5 && memcmp(key, "depth", 5) == 0) {
        return json_integer(call->depth);
    }
    if (len > 7 && memcmp(key, "header:", 7) == 0) {
        return ag_value_header(call, key + 7, len - 7);
    }
    if (len > 6 && memcmp(key, "query:", 6) == 0) {
        return ag_value_query(call, key + 6, len - 6);
    }
    if (len >= 5 && memcmp(key, "body:", 5) == 0) {
        return ag_value_pointer(call->body, key + 5, len - 5);
    }
    if (len >= 5 && memcmp(key, "args:", 5) == 0) {
        return ag_value_pointer(call->mcp_args, key + 5, len - 5);
    }
    return NULL;
}
