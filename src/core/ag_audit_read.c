/*
 * Reading an audit file backwards for the audit API (SPEC section 8): the
 * filter on one line, timestamps, and the newest-first scan of a file.
 *
 * Nothing here verifies the chain (that is the CLI's job, off the request
 * path), but nothing trusts a line either: the file may have been edited,
 * cut by a crash, or be something else altogether. A line that is not a
 * record is skipped, never an error, and a filter matches only a member that
 * a JSON parser would read the same way: top-level, its name and value
 * decoded, in a line that is JSON throughout.
 */

/* memrchr: nginx's build does not define it, ours does */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  1
#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ag_audit.h"
#include "ag_util.h"


#define AG_AUDIT_READ_CHUNK   65536
#define AG_AUDIT_JSON_DEPTH   64        /* as ag_json_parse refuses deeper */

/* the members a filter reads, as bits */
#define AG_AUDIT_F_AGENT      0x01
#define AG_AUDIT_F_TASK       0x02
#define AG_AUDIT_F_TOOL       0x04
#define AG_AUDIT_F_DECISION   0x08
#define AG_AUDIT_F_EVENT      0x10


/* --- timestamps ---------------------------------------------------------------- */

/*
 * "2026-11-23T15:35:57.123456Z" (what ag_audit_ts writes) or
 * "2026-11-23T15:35:57Z", to microseconds since the epoch. The fraction may
 * have 1 to 9 digits, because `since` also comes from clients that write
 * milliseconds (JavaScript) or nanoseconds; digits past the microsecond are
 * dropped. Only UTC: an offset would make the text and the record's ts
 * compare differently for the same instant, and records are always UTC. A
 * leap second counts as :59, as in ag_call.c.
 */

int
ag_audit_ts_parse(const char *s, size_t len, int64_t *us)
{
    return ag_rfc3339_us(s, len, AG_TIME_FRAC9, us);
}


/* --- JSON, just enough to find top-level members ------------------------------ */

/*
 * A record's line is compact JSON written by ag_audit_body, but a filter
 * must not be fooled by one that is not: a nested "agent", a name or value
 * written with escapes, a string that swallows a quote. So the line is
 * walked as JSON (strings with their escapes and UTF-8, numbers, literals,
 * nesting) without building anything, and only the members at depth 1 are
 * compared. Anything that is not JSON ends the walk with "no match".
 */

/*
 * Eight bytes in a word: a byte of (x - ONES) & ~x & HIGHS is set when that
 * byte of x is zero (or follows one that is), so XOR with a byte value finds
 * that value, and (w - 0x20 * ONES) & ~w finds bytes below 0x20. Never a
 * miss; at worst a false alarm, which the byte loop then sorts out.
 */
#define AG_JSON_ONES          UINT64_C(0x0101010101010101)
#define AG_JSON_HIGHS         UINT64_C(0x8080808080808080)

/* the bytes a string may hold as they are: not '"', '\\', controls, non-ASCII */
static const unsigned char  ag_json_plain[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,   /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,             /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1              /* 0x70 */
};


static int
ag_json_hex4(const char *p, uint32_t *v)
{
    int       i;
    uint32_t  c;

    *v = 0;

    for (i = 0; i < 4; i++) {
        c = (unsigned char) p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';
        } else if (c >= 'a' && c <= 'f') {
            c -= 'a' - 10;
        } else if (c >= 'A' && c <= 'F') {
            c -= 'A' - 10;
        } else {
            return -1;
        }

        *v = (*v << 4) | c;
    }

    return 0;
}


/*
 * The escape at p (just after its '\\') decoded into out (UTF-8, 1 to 4
 * bytes): its length in the text after the '\\', or 0 if it is not a valid
 * escape. A surrogate must come as a pair, as a strict parser wants it.
 */

static size_t
ag_json_escape(const char *p, const char *last, unsigned char *out,
    size_t *outlen)
{
    uint32_t  c, lo;

    if (p == last) {
        return 0;
    }

    *outlen = 1;

    switch (*p) {
    case '"':  out[0] = '"'; return 1;
    case '\\': out[0] = '\\'; return 1;
    case '/':  out[0] = '/'; return 1;
    case 'b':  out[0] = '\b'; return 1;
    case 'f':  out[0] = '\f'; return 1;
    case 'n':  out[0] = '\n'; return 1;
    case 'r':  out[0] = '\r'; return 1;
    case 't':  out[0] = '\t'; return 1;
    case 'u':  break;
    default:   return 0;
    }

    if (last - p < 5 || ag_json_hex4(p + 1, &c) != 0) {
        return 0;
    }

    if (c >= 0xdc00 && c <= 0xdfff) {
        return 0;
    }

    if (c >= 0xd800 && c <= 0xdbff) {
        if (last - p < 11 || p[5] != '\\' || p[6] != 'u'
            || ag_json_hex4(p + 7, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
        {
            return 0;
        }

        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);

        out[0] = (unsigned char) (0xf0 | (c >> 18));
        out[1] = (unsigned char) (0x80 | ((c >> 12) & 0x3f));
        out[2] = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
        out[3] = (unsigned char) (0x80 | (c & 0x3f));
        *outlen = 4;

        return 11;
    }

    if (c < 0x80) {
        out[0] = (unsigned char) c;

    } else if (c < 0x800) {
        out[0] = (unsigned char) (0xc0 | (c >> 6));
        out[1] = (unsigned char) (0x80 | (c & 0x3f));
        *outlen = 2;

    } else {
        out[0] = (unsigned char) (0xe0 | (c >> 12));
        out[1] = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (c & 0x3f));
        *outlen = 3;
    }

    return 5;
}


/*
 * The string whose opening quote is at p: its end (just after the closing
 * quote), or NULL if it is not a valid JSON string. *esc says whether it
 * holds escapes, so that the common case compares with one memcmp.
 */

static const char *
ag_json_string(const char *p, const char *last, int *esc)
{
    size_t                n, olen;
    uint64_t              w, q, b;
    unsigned char         out[4];
    const unsigned char  *u;

    *esc = 0;
    u = (const unsigned char *) p + 1;

    for ( ;; ) {
        /* eight bytes at a time while none of them needs a look: most of a
           line is strings, so this is most of the cost of a filter */
        while ((const unsigned char *) last - u >= 8) {
            memcpy(&w, u, 8);

            q = w ^ (AG_JSON_ONES * '"');
            b = w ^ (AG_JSON_ONES * '\\');

            if ((((q - AG_JSON_ONES) & ~q) | ((b - AG_JSON_ONES) & ~b)
                 | ((w - AG_JSON_ONES * 0x20) & ~w) | w)
                & AG_JSON_HIGHS)
            {
                break;
            }

            u += 8;
        }

        while (u < (const unsigned char *) last && ag_json_plain[*u]) {
            u++;
        }

        if (u == (const unsigned char *) last) {
            return NULL;
        }

        if (*u == '"') {
            return (const char *) u + 1;
        }

        if (*u == '\\') {
            n = ag_json_escape((const char *) u + 1, last, out, &olen);
            if (n == 0) {
                return NULL;
            }

            *esc = 1;
            u += 1 + n;
            continue;
        }

        if (*u < 0x80) {
            return NULL;            /* a control character */
        }

        n = ag_utf8_len(u, (const unsigned char *) last - u);
        if (n == 0) {
            return NULL;
        }

        u += n;
    }
}


/*
 * Whether the JSON string [p, e) (quotes included, already checked by
 * ag_json_string) decodes to exactly want.
 */

static int
ag_json_string_eq(const char *p, const char *e, int esc, const char *want,
    size_t wlen)
{
    size_t          n, olen;
    unsigned char   out[4];

    p++;
    e--;

    if (!esc) {
        return (size_t) (e - p) == wlen
               && (wlen == 0 || memcmp(p, want, wlen) == 0);
    }

    while (p < e) {
        if (*p != '\\') {
            if (wlen == 0 || *p != *want) {
                return 0;
            }

            p++;
            want++;
            wlen--;
            continue;
        }

        n = ag_json_escape(p + 1, e, out, &olen);
        if (n == 0 || wlen < olen || memcmp(out, want, olen) != 0) {
            return 0;
        }

        p += 1 + n;
        want += olen;
        wlen -= olen;
    }

    return wlen == 0;
}


static const char *
ag_json_ws(const char *p, const char *last)
{
    while (p < last && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }

    return p;
}


static const char *
ag_json_digits(const char *p, const char *last)
{
    const char  *s;

    s = p;

    while (p < last && *p >= '0' && *p <= '9') {
        p++;
    }

    return p > s ? p : NULL;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static const char *
ag_json_number(const char *p, const char *last)
{
    if (p < last && *p == '-') {
        p++;
    }

    if (p < last && *p == '0') {
        p++;

    } else if ((p = ag_json_digits(p, last)) == NULL) {
        return NULL;
    }

    if (p < last && *p == '.' && (p = ag_json_digits(p + 1, last)) == NULL) {
        return NULL;
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        p = ag_json_digits(p, last);
    }

    return p;
}


/* A string, number or literal at p: its end, or NULL. */

static const char *
ag_json_scalar(const char *p, const char *last)
{
    int  esc;

    switch (*p) {
    case '"':
        return ag_json_string(p, last, &esc);

    case 't':
        return last - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;

    case 'f':
        return last - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;

    case 'n':
        return last - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;

    default:
        return ag_json_number(p, last);
    }
}


/* A member's name and its ':' at p: the value's start, or NULL. */

static const char *
ag_json_name(const char *p, const char *last, const char **name,
    const char **name_end, int *esc)
{
    p = ag_json_ws(p, last);

    if (p == last || *p != '"') {
        return NULL;
    }

    *name = p;

    p = ag_json_string(p, last, esc);
    if (p == NULL) {
        return NULL;
    }

    *name_end = p;
    p = ag_json_ws(p, last);

    if (p == last || *p != ':') {
        return NULL;
    }

    return ag_json_ws(p + 1, last);
}


/*
 * The value at p, nested at `depth` (its container's), whatever it holds:
 * its end, or NULL. Iterative with one bit per open container, so that a
 * hostile line cannot make the stack deep.
 */

static const char *
ag_json_skip(const char *p, const char *last, int depth)
{
    int          d, esc;
    uint64_t     obj;
    const char  *n, *ne;

    d = 0;
    obj = 0;

    for ( ;; ) {

        /* a value is expected at p */

        if (p == last) {
            return NULL;
        }

        if (*p == '{' || *p == '[') {
            if (depth + d + 1 > AG_AUDIT_JSON_DEPTH) {
                return NULL;
            }

            obj = (obj << 1) | (*p == '{');
            d++;
            p = ag_json_ws(p + 1, last);

            if (p < last && *p == ((obj & 1) ? '}' : ']')) {
                p++;
                obj >>= 1;
                d--;

            } else {
                if ((obj & 1)
                    && (p = ag_json_name(p, last, &n, &ne, &esc)) == NULL)
                {
                    return NULL;
                }

                continue;
            }

        } else if ((p = ag_json_scalar(p, last)) == NULL) {
            return NULL;
        }

        /* after a value: close containers until one goes on */

        for ( ;; ) {
            if (d == 0) {
                return p;
            }

            p = ag_json_ws(p, last);

            if (p == last) {
                return NULL;
            }

            if (*p == ',') {
                p = ag_json_ws(p + 1, last);

                if ((obj & 1)
                    && (p = ag_json_name(p, last, &n, &ne, &esc)) == NULL)
                {
                    return NULL;
                }

                break;
            }

            if (*p != ((obj & 1) ? '}' : ']')) {
                return NULL;
            }

            p++;
            obj >>= 1;
            d--;
        }
    }
}


/* Which filtered member a top-level name is (0: none of them). */

static unsigned
ag_audit_member(const char *n, const char *ne, int esc)
{
    static const struct {
        const char  *name;
        size_t       len;
        unsigned     bit;
    } members[] = {
        { "agent", 5, AG_AUDIT_F_AGENT },
        { "task", 4, AG_AUDIT_F_TASK },
        { "tool", 4, AG_AUDIT_F_TOOL },
        { "decision", 8, AG_AUDIT_F_DECISION },
        { "event", 5, AG_AUDIT_F_EVENT },
    };

    size_t  i, len;

    len = (size_t) (ne - n) - 2;

    for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        if (esc) {
            if (ag_json_string_eq(n, ne, esc, members[i].name,
                                  members[i].len))
            {
                return members[i].bit;
            }

        } else if (len == members[i].len
                   && memcmp(n + 1, members[i].name, len) == 0)
        {
            return members[i].bit;
        }
    }

    return 0;
}


/*
 * The filter against the members of a line already known to have a record's
 * form. Returns as soon as a filtered member differs (most lines, when a
 * filter is set), else walks the whole line: a match needs it to be JSON
 * throughout, and a filtered name that comes twice is ambiguous.
 */

static int
ag_audit_filter_members(const ag_audit_filter_t *f, const char *line,
    size_t len)
{
    int              esc;
    unsigned         want, seen, bit;
    const char      *p, *last, *n, *ne, *v, *e;
    const ag_str_t  *fv;

    if (f == NULL) {
        return 1;
    }

    want = (f->agent.len ? AG_AUDIT_F_AGENT : 0)
           | (f->task.len ? AG_AUDIT_F_TASK : 0)
           | (f->tool.len ? AG_AUDIT_F_TOOL : 0)
           | (f->decision.len ? AG_AUDIT_F_DECISION : 0)
           | (f->event.len ? AG_AUDIT_F_EVENT : 0);

    if (want == 0) {
        return 1;
    }

    p = line;
    last = line + len;
    seen = 0;

    p = ag_json_ws(p, last);

    if (p == last || *p != '{') {
        return 0;
    }

    p++;

    for ( ;; ) {
        v = ag_json_name(p, last, &n, &ne, &esc);
        if (v == NULL || v == last) {
            return 0;
        }

        bit = ag_audit_member(n, ne, esc);

        if (bit & seen) {
            return 0;
        }

        seen |= bit;

        if (bit & want) {
            if (*v != '"') {
                return 0;           /* a filter is a string */
            }

            e = ag_json_string(v, last, &esc);
            if (e == NULL) {
                return 0;
            }

            switch (bit) {
            case AG_AUDIT_F_AGENT:    fv = &f->agent; break;
            case AG_AUDIT_F_TASK:     fv = &f->task; break;
            case AG_AUDIT_F_TOOL:     fv = &f->tool; break;
            case AG_AUDIT_F_DECISION: fv = &f->decision; break;
            default:                  fv = &f->event; break;
            }

            if (!ag_json_string_eq(v, e, esc, fv->p, fv->len)) {
                return 0;
            }

        } else {
            e = ag_json_skip(v, last, 1);
            if (e == NULL) {
                return 0;
            }
        }

        p = ag_json_ws(e, last);

        if (p == last) {
            return 0;
        }

        if (*p == ',') {
            p++;
            continue;
        }

        if (*p != '}') {
            return 0;
        }

        p = ag_json_ws(p + 1, last);

        return p == last && (want & ~seen) == 0;
    }
}


int
ag_audit_filter_match(const ag_audit_filter_t *f, const char *line,
    size_t len)
{
    ag_audit_line_t  l;

    if (ag_audit_line_parse(line, len, &l, NULL, 0) != 0) {
        return 0;
    }

    return ag_audit_filter_members(f, line, len);
}


/* --- reading backwards ---------------------------------------------------------- */

/* The last '\n' in [p, p + n), or NULL. */

static const char *
ag_last_nl(const char *p, size_t n)
{
    return n ? memrchr(p, '\n', n) : NULL;
}


typedef struct {
    const ag_audit_filter_t  *filter;
    size_t                    limit;
    size_t                    delivered;
    ag_audit_line_pt          handler;
    void                     *data;
} ag_audit_scan_t;


enum {
    AG_AUDIT_SCAN_ON = 0,
    AG_AUDIT_SCAN_DONE,         /* the limit, or the handler said stop */
    AG_AUDIT_SCAN_SINCE         /* a record older than `since` */
};


static int
ag_audit_scan_line(ag_audit_scan_t *s, const char *line, size_t len)
{
    int64_t          ts;
    ag_audit_line_t  l;

    if (len > AG_AUDIT_LINE_MAX
        || ag_audit_line_parse(line, len, &l, NULL, 0) != 0)
    {
        return AG_AUDIT_SCAN_ON;
    }

    if (s->filter != NULL && s->filter->since_us > 0) {
        if (ag_audit_ts_parse(l.ts.p, l.ts.len, &ts) != 0) {
            return AG_AUDIT_SCAN_ON;    /* not a record after all */
        }

        if (ts < s->filter->since_us) {
            return AG_AUDIT_SCAN_SINCE;
        }
    }

    if (!ag_audit_filter_members(s->filter, line, len)) {
        return AG_AUDIT_SCAN_ON;
    }

    s->delivered++;

    if (s->handler(s->data, line, len) != 0
        || (s->limit && s->delivered >= s->limit))
    {
        return AG_AUDIT_SCAN_DONE;
    }

    return AG_AUDIT_SCAN_ON;
}


/*
 * The file is read in chunks from `before` towards its start. The buffer
 * holds the bytes read but not yet examined, [from, top): whole lines are
 * taken from its end, newest first, and what is left is the head of a line
 * whose start is in the next chunk. That head never needs more than
 * AG_AUDIT_LINE_MAX + 1 bytes: a longer one is dropped (`skip`) and reading
 * goes on until its start is found.
 *
 * Everything in [top, before) has been examined, and top is always a line's
 * start (or `before`), so it is the place to continue from. max_bytes counts
 * the bytes read: a scan stops once it is spent, with top where it stands.
 * A call passes at least one line when max_bytes > AG_AUDIT_LINE_MAX + 1 and
 * that line is no longer than a record may be; a longer line, or an
 * unfinished last one, takes as many bytes as it has. When nothing could be
 * passed, *next is the start (the file's size for -1) and the caller sees
 * that nothing moved.
 *
 * limit 0 is no limit on matches (max_bytes still bounds the scan). A line
 * whose ts is not a time is skipped when `since` is set: it cannot be placed.
 */

int
ag_audit_read_back(int fd, off_t before, const ag_audit_filter_t *f,
    size_t limit, size_t max_bytes, ag_audit_line_pt handler, void *data,
    off_t *next, char *err, size_t errlen)
{
    int               rc, skip;
    char             *buf, c;
    off_t             size, from, top;
    size_t            cap, have, n, budget;
    const char       *nl, *bp;
    struct stat       st;
    ag_audit_scan_t   s;

    *next = before < 0 ? 0 : before;

    /* fstat, not lseek: the descriptor may be the writer's, and its offset
       is none of our business */
    if (fstat(fd, &st) != 0) {
        ag_errf(err, errlen, "cannot find the end of the audit file: %s",
                strerror(errno));
        return -1;
    }

    size = st.st_size;

    if (before < -1 || before > size) {
        ag_errf(err, errlen, "offset %lld is not in the audit file",
                (long long) before);
        return -1;
    }

    skip = 0;

    if (before == -1) {
        before = size;

        /* a last line without its '\n' is being written, or was cut short */
        if (size > 0) {
            if (ag_pread_all(fd, &c, 1, size - 1) != 0) {
                goto failed;
            }

            skip = (c != '\n');
        }

    } else if (before > 0) {
        if (ag_pread_all(fd, &c, 1, before - 1) != 0) {
            goto failed;
        }

        if (c != '\n') {
            ag_errf(err, errlen, "offset %lld is not the start of a line",
                    (long long) before);
            return -1;
        }
    }

    *next = before;

    if (before == 0) {
        return 0;
    }

    cap = AG_AUDIT_READ_CHUNK + AG_AUDIT_LINE_MAX + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        ag_errf(err, errlen, "out of memory");
        return -1;
    }

    s.filter = f;
    s.limit = limit;
    s.delivered = 0;
    s.handler = handler;
    s.data = data;

    top = before;
    from = before;
    bp = buf + cap;         /* the byte at file offset `from` */
    budget = max_bytes;
    rc = AG_AUDIT_SCAN_ON;

    while (top > 0) {

        /* whole lines at the end of what is buffered, newest first */

        while (!skip && top > from) {
            /* top - 1 is the '\n' of the line before top */
            nl = ag_last_nl(bp, (size_t) (top - 1 - from));

            if (nl == NULL) {
                if (from > 0) {
                    break;          /* its start is further back */
                }

                rc = ag_audit_scan_line(&s, bp, (size_t) (top - 1));
                top = 0;

            } else {
                n = (size_t) (bp + (top - 1 - from) - (nl + 1));
                top = from + (nl + 1 - bp);
                rc = ag_audit_scan_line(&s, nl + 1, n);
            }

            if (rc != AG_AUDIT_SCAN_ON) {
                goto done;
            }
        }

        if (top == 0) {
            break;
        }

        have = skip ? 0 : (size_t) (top - from);

        if (have > AG_AUDIT_LINE_MAX + 1) {
            skip = 1;               /* too long for a record: find its start */
            have = 0;
        }

        if (from == 0) {
            top = 0;                /* the skipped line was the first */
            break;
        }

        n = (size_t) (from < AG_AUDIT_READ_CHUNK ? from : AG_AUDIT_READ_CHUNK);
        if (n > budget) {
            n = budget;
        }

        if (n == 0) {
            break;                  /* max_bytes are spent */
        }

        /* keep the head of the line at the end of the buffer, read before it */

        if (have) {
            memmove(buf + cap - have, bp, have);
        }

        if (ag_pread_all(fd, buf + cap - have - n, n, from - (off_t) n) != 0) {
            free(buf);
            goto failed;
        }

        budget -= n;
        from -= (off_t) n;
        bp = buf + cap - have - n;

        if (skip) {
            nl = ag_last_nl(bp, n);

            if (nl != NULL) {
                top = from + (nl + 1 - bp);
                skip = 0;
            }
        }
    }

done:

    free(buf);

    *next = (rc == AG_AUDIT_SCAN_SINCE) ? 0 : top;

    return 0;

failed:

    ag_errf(err, errlen, "cannot read the audit file: %s", strerror(errno));

    return -1;
}
