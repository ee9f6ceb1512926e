/*
 * Reading the audit file backwards (ag_audit_read.c): the filter on one line
 * (escapes, nesting, malformed lines), timestamps, and ag_audit_read_back on
 * real files sealed with ag_audit_seal: order, limits, filters, since,
 * max_bytes and continuing from *next, `before`, and the lines it must skip
 * (cut short, garbage, too long), across 64 KiB chunk boundaries.
 */

#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

#include "unit.h"
#include "ag_audit.h"


#define T0       INT64_C(1795448157123456)  /* 2026-11-23T15:35:57.123456Z */

static const unsigned char  test_key[32] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
};


/* --- an audit file written here ------------------------------------------------ */

typedef struct {
    off_t      off;
    size_t     len;             /* without '\n' */
    uint64_t   seq;             /* 0: not a record */
} line_t;

typedef struct {
    int              fd;
    char             path[256];
    ag_audit_key_t  *key;
    uint64_t         seq;
    char             prev[AG_AUDIT_HEX];
    ag_buf_t         all;       /* every byte written, to compare lines with */
    line_t          *lines;
    size_t           nlines;
    size_t           cap;
} af_t;


static ag_str_t
S(const char *s)
{
    ag_str_t  r;

    r.p = s;
    r.len = s ? strlen(s) : 0;
    return r;
}


static void
af_open(af_t *af)
{
    char         err[256];
    const char  *dir;

    memset(af, 0, sizeof(*af));
    memset(af->prev, '0', AG_AUDIT_HEX);

    dir = getenv("TMPDIR");
    snprintf(af->path, sizeof(af->path), "%s/agentgov-audit-read-XXXXXX",
             dir && dir[0] ? dir : "/tmp");
    af->fd = mkstemp(af->path);
    assert_true(af->fd >= 0);

    /* only the descriptor is used: a failed test leaves no file behind */
    unlink(af->path);

    af->key = ag_audit_key_new(test_key, sizeof(test_key), err, sizeof(err));
    assert_non_null(af->key);
}


static void
af_close(af_t *af)
{
    close(af->fd);
    ag_audit_key_free(af->key);
    ag_buf_free(&af->all);
    free(af->lines);
}


static void
af_write(af_t *af, const char *p, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(af->fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t) n;
    }
}


/* bytes as they are; a line is noted for each '\n' in them */
static void
af_raw(af_t *af, const char *p, size_t len)
{
    size_t   i, start;

    start = af->all.len;
    ag_buf_add(&af->all, p, len);
    assert_false(af->all.failed);
    af_write(af, p, len);

    for (i = 0; i < len; i++) {
        if (p[i] != '\n') {
            continue;
        }

        if (af->nlines == af->cap) {
            af->cap = af->cap ? af->cap * 2 : 64;
            af->lines = realloc(af->lines, af->cap * sizeof(line_t));
            assert_non_null(af->lines);
        }

        /* the line starts after the previous '\n' anywhere in the file */
        af->lines[af->nlines].off = af->nlines
            ? af->lines[af->nlines - 1].off
              + (off_t) af->lines[af->nlines - 1].len + 1
            : 0;
        af->lines[af->nlines].len = start + i
                                    - (size_t) af->lines[af->nlines].off;
        af->lines[af->nlines].seq = 0;
        af->nlines++;
    }
}


static void
af_raw_str(af_t *af, const char *s)
{
    af_raw(af, s, strlen(s));
}


/* a record of the given body members, sealed into the chain */
static uint64_t
af_body(af_t *af, const char *body, size_t len, int64_t ts)
{
    char      hash[AG_AUDIT_HEX];
    ag_buf_t  line;

    memset(&line, 0, sizeof(line));
    af->seq++;
    assert_int_equal(ag_audit_seal(af->key, af->seq, ts, body, len, af->prev,
                                   &line, hash), 0);
    memcpy(af->prev, hash, AG_AUDIT_HEX);

    af_raw(af, line.p, line.len);
    af->lines[af->nlines - 1].seq = af->seq;
    ag_buf_free(&line);

    return af->seq;
}


static uint64_t
af_rec(af_t *af, const ag_audit_rec_t *rec, int64_t ts)
{
    uint64_t  seq;
    ag_buf_t  body;

    memset(&body, 0, sizeof(body));
    ag_audit_body(rec, &body);
    assert_false(body.failed);
    seq = af_body(af, body.p, body.len, ts);
    ag_buf_free(&body);

    return seq;
}


static void
rec_init(ag_audit_rec_t *r, const char *event, const char *agent,
    const char *task, const char *tool, const char *decision)
{
    memset(r, 0, sizeof(*r));
    r->event = event;
    r->agent = S(agent);
    r->task = S(task);
    r->tool = S(tool);
    r->decision = S(decision);
    r->latency_us = -1;
}


/* the line of record seq */
static const line_t *
af_line(const af_t *af, uint64_t seq)
{
    size_t  i;

    for (i = 0; i < af->nlines; i++) {
        if (af->lines[i].seq == seq) {
            return &af->lines[i];
        }
    }

    fail_msg("no record %" PRIu64, seq);
    return NULL;
}


/* a file of n call records: agent a/b/c, task t1/t2, tool x/y/z,
   decision allow/deny, one second apart, of various lengths */
static void
af_calls(af_t *af, size_t n)
{
    size_t           i;
    char             reason[200];
    ag_audit_rec_t   r;
    static const char *agents[] = { "a", "b", "c" };
    static const char *tools[] = { "x", "y", "z" };

    for (i = 0; i < n; i++) {
        rec_init(&r, "call", agents[i % 3], i % 2 ? "t2" : "t1",
                 tools[(i / 3) % 3], i % 5 == 4 ? "deny" : "allow");
        r.method = S("POST");
        r.host = S("api.example");
        r.path = S("/v1/things");
        snprintf(reason, sizeof(reason), "record %zu %.*s", i + 1,
                 (int) (i * 7 % 150), "....................................."
                 "............................................................"
                 "...................................................");
        r.reason = S(reason);
        af_rec(af, &r, T0 + (int64_t) i * 1000000);
    }
}


/* --- what the handler got ----------------------------------------------------------- */

typedef struct {
    const af_t  *af;
    uint64_t    *seq;
    size_t       n;
    size_t       cap;
    size_t       stop_after;    /* return 1 then; 0: never */
} got_t;


static int
collect(void *data, const char *line, size_t len)
{
    char              err[128];
    got_t            *g;
    const line_t     *l;
    ag_audit_line_t   al;

    g = data;

    assert_int_equal(ag_audit_line_parse(line, len, &al, err, sizeof(err)), 0);

    /* the exact bytes of the file's line, without its '\n' */
    l = af_line(g->af, al.seq);
    assert_int_equal(len, l->len);
    assert_memory_equal(line, g->af->all.p + l->off, len);

    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->seq = realloc(g->seq, g->cap * sizeof(uint64_t));
        assert_non_null(g->seq);
    }

    g->seq[g->n++] = al.seq;

    return g->stop_after && g->n == g->stop_after;
}


static void
got_init(got_t *g, const af_t *af)
{
    memset(g, 0, sizeof(*g));
    g->af = af;
}


static void
got_free(got_t *g)
{
    free(g->seq);
}


/* read_back into g, which is emptied first; returns *next */
static off_t
read_back(const af_t *af, off_t before, const ag_audit_filter_t *f,
    size_t limit, size_t max_bytes, got_t *g)
{
    int    rc;
    char   err[256];
    off_t  next;

    g->n = 0;
    next = -7;
    err[0] = '\0';

    rc = ag_audit_read_back(af->fd, before, f, limit, max_bytes, collect, g,
                            &next, err, sizeof(err));
    if (rc != 0) {
        fail_msg("read_back: %s", err);
    }

    assert_true(next >= 0);
    return next;
}


/* g holds exactly these seqs, in this order (0 ends the list) */
static void
got_is(const got_t *g, ...)
{
    size_t    i;
    va_list   ap;
    uint64_t  want;

    va_start(ap, g);

    for (i = 0; ; i++) {
        want = va_arg(ap, uint64_t);
        if (want == 0) {
            break;
        }

        if (i >= g->n) {
            va_end(ap);
            fail_msg("got %zu records, wanted more (next %" PRIu64 ")", g->n,
                     want);
        }

        if (g->seq[i] != want) {
            va_end(ap);
            fail_msg("record %zu is seq %" PRIu64 ", not %" PRIu64, i,
                     g->seq[i], want);
        }
    }

    va_end(ap);

    if (i != g->n) {
        fail_msg("got %zu records, wanted %zu", g->n, i);
    }
}

#define U(n)  ((uint64_t) (n))

/* g holds from down to to, every one */
static void
got_range(const got_t *g, uint64_t from, uint64_t to)
{
    size_t  i;

    assert_int_equal(g->n, from - to + 1);
    for (i = 0; i < g->n; i++) {
        assert_int_equal(g->seq[i], from - i);
    }
}


#define BIG  ((size_t) 1 << 30)


/* --- ag_audit_read_back ---------------------------------------------------------- */

static void
newest_first(void **state)
{
    af_t    af;
    got_t   g;
    off_t   next;

    (void) state;

    af_open(&af);
    af_calls(&af, 10);
    got_init(&g, &af);

    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 10, 1);
    assert_int_equal(next, 0);

    /* an empty filter is no filter */
    {
        ag_audit_filter_t  f;

        memset(&f, 0, sizeof(f));
        next = read_back(&af, -1, &f, 100, BIG, &g);
        got_range(&g, 10, 1);
        assert_int_equal(next, 0);
    }

    got_free(&g);
    af_close(&af);
}


static void
limit_and_continue(void **state)
{
    af_t    af;
    got_t   g;
    off_t   next;

    (void) state;

    af_open(&af);
    af_calls(&af, 10);
    got_init(&g, &af);

    next = read_back(&af, -1, NULL, 3, BIG, &g);
    got_is(&g, U(10), U(9), U(8), U(0));
    assert_int_equal(next, af_line(&af, 8)->off);

    next = read_back(&af, next, NULL, 3, BIG, &g);
    got_is(&g, U(7), U(6), U(5), U(0));
    assert_int_equal(next, af_line(&af, 5)->off);

    next = read_back(&af, next, NULL, 4, BIG, &g);
    got_is(&g, U(4), U(3), U(2), U(1), U(0));
    /* the limit was reached on the first line: 0 either way */
    assert_int_equal(next, 0);

    next = read_back(&af, next, NULL, 4, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    /* the handler stops it: the line it saw last is where to go on from */
    g.stop_after = 2;
    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_is(&g, U(10), U(9), U(0));
    assert_int_equal(next, af_line(&af, 9)->off);

    got_free(&g);
    af_close(&af);
}


static void
filters(void **state)
{
    af_t               af;
    got_t              g;
    off_t              next;
    ag_audit_rec_t     r;
    ag_audit_filter_t  f;

    (void) state;

    af_open(&af);

    rec_init(&r, "call", "a", "t1", "x", "allow");
    af_rec(&af, &r, T0);                                 /* 1 */
    rec_init(&r, "result", "a", "t1", "x", NULL);
    r.status = 200;
    r.latency_us = 1234;
    af_rec(&af, &r, T0 + 1);                             /* 2 */
    rec_init(&r, "call", "b", "t1", "y", "deny");
    af_rec(&af, &r, T0 + 2);                             /* 3 */
    rec_init(&r, "call", "a", "t2", "y", "hold");
    af_rec(&af, &r, T0 + 3);                             /* 4 */
    rec_init(&r, "task", "b", "t2", NULL, NULL);
    r.op = S("declare");
    af_rec(&af, &r, T0 + 4);                             /* 5 */
    rec_init(&r, "call", "ab", "t", "xy", "allowed");
    af_rec(&af, &r, T0 + 5);                             /* 6: prefixes */
    rec_init(&r, "call", "A", "T1", "X", "ALLOW");
    af_rec(&af, &r, T0 + 6);                             /* 7: case */

    got_init(&g, &af);

    memset(&f, 0, sizeof(f));
    f.agent = S("a");
    next = read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(4), U(2), U(1), U(0));
    assert_int_equal(next, 0);

    memset(&f, 0, sizeof(f));
    f.task = S("t2");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(5), U(4), U(0));

    memset(&f, 0, sizeof(f));
    f.tool = S("y");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(4), U(3), U(0));

    /* a record without the member does not match */
    memset(&f, 0, sizeof(f));
    f.tool = S("x");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(2), U(1), U(0));

    memset(&f, 0, sizeof(f));
    f.decision = S("allow");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(1), U(0));

    memset(&f, 0, sizeof(f));
    f.event = S("call");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(7), U(6), U(4), U(3), U(1), U(0));

    memset(&f, 0, sizeof(f));
    f.event = S("result");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(2), U(0));

    /* combined: every field must match */
    memset(&f, 0, sizeof(f));
    f.agent = S("a");
    f.event = S("call");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(4), U(1), U(0));

    f.task = S("t1");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(1), U(0));

    f.tool = S("x");
    f.decision = S("allow");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(1), U(0));

    f.decision = S("deny");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(0));

    memset(&f, 0, sizeof(f));
    f.agent = S("b");
    f.task = S("t2");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(5), U(0));

    /* with a limit: *next is the last match's line */
    memset(&f, 0, sizeof(f));
    f.event = S("call");
    next = read_back(&af, -1, &f, 2, BIG, &g);
    got_is(&g, U(7), U(6), U(0));
    assert_int_equal(next, af_line(&af, 6)->off);
    next = read_back(&af, next, &f, 2, BIG, &g);
    got_is(&g, U(4), U(3), U(0));
    assert_int_equal(next, af_line(&af, 3)->off);

    /* nothing matches: the whole file is examined */
    memset(&f, 0, sizeof(f));
    f.agent = S("nobody");
    next = read_back(&af, -1, &f, 10, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    got_free(&g);
    af_close(&af);
}


static void
since(void **state)
{
    af_t               af;
    got_t              g;
    off_t              next;
    char               ts[AG_AUDIT_TS_LEN + 1];
    int64_t            us;
    ag_audit_filter_t  f;

    (void) state;

    af_open(&af);
    af_calls(&af, 10);          /* record i at T0 + (i - 1) seconds */
    got_init(&g, &af);

    /* exactly record 6's time: 6 is not older, 5 is and ends the scan */
    memset(&f, 0, sizeof(f));
    f.since_us = T0 + 5 * 1000000;
    next = read_back(&af, -1, &f, 0, BIG, &g);
    got_range(&g, 10, 6);
    assert_int_equal(next, 0);

    /* a microsecond later: 6 is older */
    f.since_us++;
    next = read_back(&af, -1, &f, 0, BIG, &g);
    got_range(&g, 10, 7);
    assert_int_equal(next, 0);

    /* the limit first: *next is where to go on, not 0 */
    f.since_us = T0 + 5 * 1000000;
    next = read_back(&af, -1, &f, 2, BIG, &g);
    got_range(&g, 10, 9);
    assert_int_equal(next, af_line(&af, 9)->off);
    next = read_back(&af, next, &f, 10, BIG, &g);
    got_range(&g, 8, 6);
    assert_int_equal(next, 0);

    /* records that do not match still end the scan when older */
    f.agent = S("a");               /* records 1, 4, 7, 10 */
    f.since_us = T0 + 5 * 1000000;
    next = read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(10), U(7), U(0));
    assert_int_equal(next, 0);

    /* everything is newer, or everything older */
    memset(&f, 0, sizeof(f));
    f.since_us = T0 - 1;
    read_back(&af, -1, &f, 0, BIG, &g);
    got_range(&g, 10, 1);
    f.since_us = T0 + 3600 * INT64_C(1000000);
    next = read_back(&af, -1, &f, 0, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    /* since from the text a client sends */
    ag_audit_ts(T0 + 5 * 1000000, ts);
    assert_int_equal(ag_audit_ts_parse(ts, AG_AUDIT_TS_LEN, &us), 0);
    f.since_us = us;
    read_back(&af, -1, &f, 0, BIG, &g);
    got_range(&g, 10, 6);

    /* a line whose ts is not a time is skipped, not taken as older */
    af_raw_str(&af, "{\"seq\":11,\"ts\":\"2026-13-23T15:35:57.123456Z\","
               "\"event\":\"call\",\"prev\":\""
               "0000000000000000000000000000000000000000000000000000000000000000"
               "\",\"hash\":\""
               "0000000000000000000000000000000000000000000000000000000000000000"
               "\"}\n");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_range(&g, 10, 6);

    got_free(&g);
    af_close(&af);
}


/*
 * Read it all by pages of max_bytes from the end, into all: each call
 * examines no more than max_bytes of the file and moves on. A call that
 * cannot move (a line longer than max_bytes) is repeated with `retry` bytes,
 * when given.
 */
static void
pages(const af_t *af, const ag_audit_filter_t *f, size_t limit,
    size_t max_bytes, size_t retry, got_t *all, size_t *calls)
{
    got_t     g;
    off_t     before, next, end;
    size_t    i, mb;

    got_init(&g, af);
    all->n = 0;
    before = -1;
    *calls = 0;
    end = (off_t) af->all.len;

    for ( ;; ) {
        mb = max_bytes;
        next = read_back(af, before, f, limit, mb, &g);
        (*calls)++;

        if (next != 0 && next == (before < 0 ? end : before) && retry) {
            assert_int_equal(g.n, 0);
            mb = retry;
            next = read_back(af, before, f, limit, mb, &g);
            (*calls)++;
        }

        /* never more than max_bytes of the file examined */
        assert_true((before < 0 ? end : before) - next <= (off_t) mb);
        assert_true(limit == 0 || g.n <= limit);

        for (i = 0; i < g.n; i++) {
            collect(all, af->all.p + af_line(af, g.seq[i])->off,
                    af_line(af, g.seq[i])->len);
        }

        if (next == 0) {
            break;
        }

        /* it always moves */
        if (next >= (before < 0 ? end : before)) {
            fail_msg("stuck at %lld with max_bytes %zu", (long long) next, mb);
        }

        before = next;
    }

    got_free(&g);
}


static void
max_bytes_and_next(void **state)
{
    af_t     af;
    got_t    g, all;
    off_t    next, total;
    size_t   calls, l50, l49;

    (void) state;

    af_open(&af);
    af_calls(&af, 50);
    got_init(&g, &af);
    got_init(&all, &af);
    total = (off_t) af.all.len;
    l50 = af_line(&af, 50)->len + 1;
    l49 = af_line(&af, 49)->len + 1;

    /* enough for the last two lines and part of the third */
    next = read_back(&af, -1, NULL, 0, l50 + l49 + 10, &g);
    got_is(&g, U(50), U(49), U(0));
    assert_int_equal(next, af_line(&af, 49)->off);

    /* exactly the last two lines: the second's start is not known yet */
    next = read_back(&af, -1, NULL, 0, l50 + l49, &g);
    got_is(&g, U(50), U(0));
    assert_int_equal(next, af_line(&af, 50)->off);

    /* one more byte shows the '\n' before it */
    next = read_back(&af, -1, NULL, 0, l50 + l49 + 1, &g);
    got_is(&g, U(50), U(49), U(0));
    assert_int_equal(next, af_line(&af, 49)->off);

    /* nothing fits: nothing moves, and *next says so */
    next = read_back(&af, -1, NULL, 0, 100, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, total);
    next = read_back(&af, af_line(&af, 30)->off, NULL, 0, 0, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, af_line(&af, 30)->off);

    /* the whole file in one go, to the byte */
    next = read_back(&af, -1, NULL, 0, (size_t) total, &g);
    got_range(&g, 50, 1);
    assert_int_equal(next, 0);

    /* the first line needs one byte less: the start of the file is known */
    next = read_back(&af, -1, NULL, 0, (size_t) total - 1, &g);
    got_range(&g, 50, 2);
    assert_int_equal(next, af_line(&af, 2)->off);

    /* pages: every record exactly once */
    pages(&af, NULL, 0, 1000, 0, &all, &calls);
    got_range(&all, 50, 1);
    assert_true(calls > 10);

    pages(&af, NULL, 0, 3333, 0, &all, &calls);
    got_range(&all, 50, 1);

    pages(&af, NULL, 3, 3333, 0, &all, &calls);
    got_range(&all, 50, 1);

    pages(&af, NULL, 1, 1000000, 0, &all, &calls);
    got_range(&all, 50, 1);
    assert_int_equal(calls, 50);

    got_free(&g);
    got_free(&all);
    af_close(&af);
}


static void
before_offsets(void **state)
{
    af_t    af;
    got_t   g;
    off_t   next, off;
    char    err[256];
    int     rc;

    (void) state;

    af_open(&af);
    af_calls(&af, 10);
    got_init(&g, &af);

    next = read_back(&af, af_line(&af, 5)->off, NULL, 0, BIG, &g);
    got_range(&g, 4, 1);
    assert_int_equal(next, 0);

    /* the end given as an offset */
    read_back(&af, (off_t) af.all.len, NULL, 0, BIG, &g);
    got_range(&g, 10, 1);

    /* the start */
    next = read_back(&af, 0, NULL, 0, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    /* the second line */
    next = read_back(&af, af_line(&af, 2)->off, NULL, 0, BIG, &g);
    got_is(&g, U(1), U(0));
    assert_int_equal(next, 0);

    /* not the start of a line, or not in the file */
    off = af_line(&af, 5)->off;
    g.n = 0;

    err[0] = '\0';
    rc = ag_audit_read_back(af.fd, off + 1, NULL, 0, BIG, collect, &g, &next,
                            err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "not the start of a line"));

    err[0] = '\0';
    rc = ag_audit_read_back(af.fd, off - 1, NULL, 0, BIG, collect, &g, &next,
                            err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "not the start of a line"));

    err[0] = '\0';
    rc = ag_audit_read_back(af.fd, (off_t) af.all.len + 1, NULL, 0, BIG,
                            collect, &g, &next, err, sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "not in the audit file"));

    err[0] = '\0';
    rc = ag_audit_read_back(af.fd, -2, NULL, 0, BIG, collect, &g, &next, err,
                            sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "not in the audit file"));

    /* no file: a read error */
    err[0] = '\0';
    rc = ag_audit_read_back(-1, -1, NULL, 0, BIG, collect, &g, &next, err,
                            sizeof(err));
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "audit file"));

    assert_int_equal(g.n, 0);

    got_free(&g);
    af_close(&af);
}


static void
empty_file(void **state)
{
    af_t    af;
    got_t   g;
    off_t   next;

    (void) state;

    af_open(&af);
    got_init(&g, &af);

    next = read_back(&af, -1, NULL, 0, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    next = read_back(&af, 0, NULL, 10, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    /* only line ends */
    af_raw_str(&af, "\n\n\n");
    next = read_back(&af, -1, NULL, 0, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    next = read_back(&af, 2, NULL, 0, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    got_free(&g);
    af_close(&af);
}


static void
partial_last_line(void **state)
{
    af_t       af;
    got_t      g;
    off_t      next, end;
    ag_buf_t   line;
    char       hash[AG_AUDIT_HEX];

    (void) state;

    af_open(&af);
    af_calls(&af, 5);
    end = (off_t) af.all.len;
    got_init(&g, &af);

    /* half a record being written */
    af_raw_str(&af, "{\"seq\":6,\"ts\":\"2026-11-23T15:36:");
    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 5, 1);
    assert_int_equal(next, 0);

    /* the offset before it still works */
    read_back(&af, end, NULL, 0, BIG, &g);
    got_range(&g, 5, 1);

    /* with a limit, *next is a line start before it */
    next = read_back(&af, -1, NULL, 1, BIG, &g);
    got_is(&g, U(5), U(0));
    assert_int_equal(next, af_line(&af, 5)->off);

    /* max_bytes spent within it: nothing moves */
    next = read_back(&af, -1, NULL, 0, 10, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, (off_t) af.all.len);

    af_close(&af);

    /* a whole record but its '\n' */
    af_open(&af);
    af_calls(&af, 5);
    memset(&line, 0, sizeof(line));
    assert_int_equal(ag_audit_seal(af.key, 6, T0, "\"event\":\"call\"", 14,
                                   af.prev, &line, hash), 0);
    af_raw(&af, line.p, line.len - 1);
    ag_buf_free(&line);

    g.af = &af;
    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 5, 1);
    assert_int_equal(next, 0);

    /* once its '\n' is there, it is read */
    af_raw_str(&af, "\n");
    af.lines[af.nlines - 1].seq = 6;
    read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 6, 1);

    af_close(&af);

    /* a file of nothing but a partial line */
    af_open(&af);
    af_raw_str(&af, "{\"seq\":1,");
    g.af = &af;
    next = read_back(&af, -1, NULL, 0, BIG, &g);
    assert_int_equal(g.n, 0);
    assert_int_equal(next, 0);

    got_free(&g);
    af_close(&af);
}


static void
skipped_lines(void **state)
{
    af_t               af;
    got_t              g, all;
    off_t              next;
    char              *big;
    size_t             biglen, calls;
    ag_buf_t           body;
    ag_audit_rec_t     r;
    ag_audit_filter_t  f;

    (void) state;

    af_open(&af);
    got_init(&g, &af);
    got_init(&all, &af);
    rec_init(&r, "call", "a", "t1", "x", "allow");

    /* garbage, an empty line, a line that only starts like a record, NULs */
    af_raw_str(&af, "not a record at all\n");
    af_calls(&af, 3);                                   /* 1 2 3 */
    af_raw_str(&af, "\n");
    af_raw_str(&af, "{\"seq\":4,\"ts\":\"2026-11-23T15:36:00.000000Z\"}\n");
    af_rec(&af, &r, T0 + 10000000);                     /* 4 */
    af_raw(&af, "\0\0\0\n", 4);

    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 4, 1);
    assert_int_equal(next, 0);

    /* a line of bytes longer than any record, and than a chunk */
    biglen = AG_AUDIT_LINE_MAX + 10;
    big = malloc(biglen + 1);
    assert_non_null(big);
    memset(big, 'x', biglen);
    big[biglen] = '\n';
    af_raw(&af, big, biglen + 1);

    af_rec(&af, &r, T0 + 11000000);                     /* 5 */

    /* a record in form, but longer than any record may be */
    memset(&body, 0, sizeof(body));
    ag_buf_str(&body, "\"event\":\"call\",\"agent\":\"a\",\"reason\":\"");
    memset(big, 'r', AG_AUDIT_LINE_MAX);
    ag_buf_add(&body, big, AG_AUDIT_LINE_MAX);
    ag_buf_str(&body, "\"");
    af_body(&af, body.p, body.len, T0 + 12000000);      /* 6: skipped */
    ag_buf_free(&body);

    af_rec(&af, &r, T0 + 13000000);                     /* 7 */

    /* AG_AUDIT_LINE_MAX bytes exactly: a line, garbage, skipped */
    memset(big, 'y', AG_AUDIT_LINE_MAX);
    big[AG_AUDIT_LINE_MAX] = '\n';
    af_raw(&af, big, AG_AUDIT_LINE_MAX + 1);

    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_is(&g, U(7), U(5), U(4), U(3), U(2), U(1), U(0));
    assert_int_equal(next, 0);

    memset(&f, 0, sizeof(f));
    f.agent = S("a");
    read_back(&af, -1, &f, 0, BIG, &g);
    got_is(&g, U(7), U(5), U(4), U(1), U(0));

    /* by small pages: a long line does not fit one, and needs a line and
       a chunk more to find its start; nothing is lost or read twice */
    pages(&af, NULL, 0, 4096, 2 * AG_AUDIT_LINE_MAX + 65536, &all, &calls);
    got_is(&all, U(7), U(5), U(4), U(3), U(2), U(1), U(0));

    pages(&af, NULL, 1, 70000, 2 * AG_AUDIT_LINE_MAX + 65536, &all, &calls);
    got_is(&all, U(7), U(5), U(4), U(3), U(2), U(1), U(0));

    /* one that can hold any record moves past every record line, but
       not necessarily past a longer line of garbage */
    pages(&af, NULL, 0, AG_AUDIT_LINE_MAX + 2, 2 * AG_AUDIT_LINE_MAX + 65536,
          &all, &calls);
    got_is(&all, U(7), U(5), U(4), U(3), U(2), U(1), U(0));

    af_close(&af);

    /* an over-long line is the first of the file, and the last */
    af_open(&af);
    g.af = &af;
    memset(big, 'x', biglen);
    af_raw(&af, big, biglen + 1);
    af_calls(&af, 2);
    af_raw(&af, big, biglen);

    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 2, 1);
    assert_int_equal(next, 0);

    free(big);
    got_free(&g);
    got_free(&all);
    af_close(&af);
}


/*
 * Records across 64 KiB chunks: a few thousand of them, read whole, in pages
 * of sizes around a chunk, and from offsets where a chunk starts exactly on
 * a line's start, on its '\n', and just after.
 */
static void
chunk_boundaries(void **state)
{
    af_t               af;
    got_t              g, all;
    off_t              next, target, size;
    size_t             calls, k, i, pad, nb;
    int                delta;
    char              *p;
    ag_audit_rec_t     r;
    ag_audit_filter_t  f;
    static const size_t  sizes[] = { 65535, 65536, 65537, 100000, 131072,
                                     12345 };

    (void) state;

    af_open(&af);
    got_init(&g, &af);
    got_init(&all, &af);
    af_calls(&af, 3000);
    assert_true(af.all.len > 10 * 65536);

    next = read_back(&af, -1, NULL, 0, BIG, &g);
    got_range(&g, 3000, 1);
    assert_int_equal(next, 0);

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        pages(&af, NULL, 0, sizes[i], 0, &all, &calls);
        got_range(&all, 3000, 1);
        assert_true(calls >= af.all.len / sizes[i]);
    }

    pages(&af, NULL, 7, 65536, 0, &all, &calls);
    got_range(&all, 3000, 1);

    /* filtered: agent b is every third from 2, a deny every fifth */
    memset(&f, 0, sizeof(f));
    f.agent = S("b");
    next = read_back(&af, -1, &f, 0, BIG, &g);
    assert_int_equal(g.n, 1000);
    for (i = 0; i < g.n; i++) {
        assert_int_equal(g.seq[i] % 3, 2);
    }
    assert_int_equal(next, 0);

    f.decision = S("deny");
    read_back(&af, -1, &f, 0, BIG, &g);
    assert_int_equal(g.n, 200);

    af_close(&af);

    for (delta = -1; delta <= 2; delta++) {
        af_open(&af);
        g.af = &af;
        af_calls(&af, 400);
        size = (off_t) af.all.len;

        /* the first record starting at least a chunk before the end */
        for (k = 1; af_line(&af, k)->off + 65536 + delta <= size + 1; k++) {
            /* void */
        }

        /* a padding line, so that a line starts a chunk after record k */
        target = af_line(&af, k)->off + 65536 + delta;
        pad = (size_t) (target - size);
        p = malloc(pad);
        assert_non_null(p);
        memset(p, 'p', pad - 1);
        p[pad - 1] = '\n';
        af_raw(&af, p, pad);
        free(p);
        rec_init(&r, "call", "a", NULL, NULL, NULL);
        af_rec(&af, &r, T0 + 400 * INT64_C(1000000));      /* 401 */

        /* one chunk from the end of the padding: record k is whole in it
           only when its '\n' before it is too (delta -1) */
        next = read_back(&af, target, NULL, 0, 65536, &g);
        if (delta == -1) {
            got_range(&g, 400, k);
            assert_int_equal(next, af_line(&af, k)->off);
        } else {
            got_range(&g, 400, k + 1);
            assert_int_equal(next, af_line(&af, k + 1)->off);
        }

        /* the chunks of a whole read start there too */
        next = read_back(&af, target, NULL, 0, BIG, &g);
        got_range(&g, 400, 1);
        assert_int_equal(next, 0);

        /* a page of about a chunk, then the rest: all of it, once */
        for (nb = 65535; nb <= 65538; nb++) {
            next = read_back(&af, target, NULL, 0, nb, &g);
            assert_true(g.n > 0 && g.seq[0] == 400);
            i = g.seq[g.n - 1];
            assert_int_equal(next, af_line(&af, i)->off);
            read_back(&af, next, NULL, 0, BIG, &g);
            got_range(&g, i - 1, 1);
        }

        pages(&af, NULL, 0, 65536, 0, &all, &calls);
        got_range(&all, 401, 1);

        af_close(&af);
    }

    got_free(&g);
    got_free(&all);
}


/* --- ag_audit_filter_match ---------------------------------------------------------- */

static ag_audit_key_t  *line_key;
static ag_buf_t         line_buf;


/* the line (without '\n') of record 1 with these body members */
static const char *
mk(const char *body, size_t *len)
{
    char  hash[AG_AUDIT_HEX], prev[AG_AUDIT_HEX];

    if (line_key == NULL) {
        line_key = ag_audit_key_new(test_key, sizeof(test_key), NULL, 0);
        assert_non_null(line_key);
    }

    memset(prev, '0', sizeof(prev));
    ag_buf_reset(&line_buf);
    assert_int_equal(ag_audit_seal(line_key, 1, T0, body, strlen(body), prev,
                                   &line_buf, hash), 0);

    *len = line_buf.len - 1;
    return line_buf.p;
}


static const char *
mk_rec(const ag_audit_rec_t *r, size_t *len)
{
    const char  *line;
    ag_buf_t     body;

    memset(&body, 0, sizeof(body));
    ag_audit_body(r, &body);
    ag_buf_add(&body, "", 1);
    assert_false(body.failed);
    line = mk(body.p, len);
    ag_buf_free(&body);

    return line;
}


/* whether the record of `body` has a top-level agent exactly `agent` */
static int
agent_is(const char *body, const char *agent, size_t alen)
{
    size_t             len;
    const char        *line;
    ag_audit_filter_t  f;

    line = mk(body, &len);
    memset(&f, 0, sizeof(f));
    f.agent.p = agent;
    f.agent.len = alen;

    return ag_audit_filter_match(&f, line, len);
}

#define AGENT_IS(body, agent)  agent_is(body, agent, sizeof(agent) - 1)


static int
filter_free(void)
{
    ag_buf_free(&line_buf);
    ag_audit_key_free(line_key);
    line_key = NULL;
    return 0;
}


static void
match_escaped(void **state)
{
    size_t             len;
    const char        *line;
    ag_audit_rec_t     r;
    ag_audit_filter_t  f;

    (void) state;

    /* written by ag_audit_body, read back decoded */
    rec_init(&r, "call", "a\"b", "t\\1", "to\nol", "all\x01ow");
    line = mk_rec(&r, &len);
    assert_non_null(memmem(line, len, "\"agent\":\"a\\\"b\"", 14));

    memset(&f, 0, sizeof(f));
    f.agent = S("a\"b");
    assert_true(ag_audit_filter_match(&f, line, len));
    f.agent = S("a\\\"b");
    assert_false(ag_audit_filter_match(&f, line, len));
    f.agent = S("a");
    assert_false(ag_audit_filter_match(&f, line, len));
    f.agent = S("a\"");
    assert_false(ag_audit_filter_match(&f, line, len));
    f.agent = S("a\"bc");
    assert_false(ag_audit_filter_match(&f, line, len));
    f.agent = S("a\"b");
    f.task = S("t\\1");
    f.tool = S("to\nol");
    f.decision = S("all\x01ow");
    f.event = S("call");
    assert_true(ag_audit_filter_match(&f, line, len));
    f.decision = S("all\\u0001ow");
    assert_false(ag_audit_filter_match(&f, line, len));

    /* UTF-8 as it is; bytes that are not UTF-8 were written as U+FFFD */
    rec_init(&r, "call", "\xc3\xa9t\xc3\xa9", NULL, NULL, NULL);
    line = mk_rec(&r, &len);
    memset(&f, 0, sizeof(f));
    f.agent = S("\xc3\xa9t\xc3\xa9");
    assert_true(ag_audit_filter_match(&f, line, len));

    rec_init(&r, "call", "x\xff", NULL, NULL, NULL);
    line = mk_rec(&r, &len);
    f.agent = S("x\xef\xbf\xbd");
    assert_true(ag_audit_filter_match(&f, line, len));
    f.agent = S("x\xff");
    assert_false(ag_audit_filter_match(&f, line, len));

    /* a NUL in a value, with an explicit length */
    r.agent.p = "x\0y";
    r.agent.len = 3;
    line = mk_rec(&r, &len);
    f.agent.p = "x\0y";
    f.agent.len = 3;
    assert_true(ag_audit_filter_match(&f, line, len));
    f.agent.len = 1;
    assert_false(ag_audit_filter_match(&f, line, len));

    /* escapes ag_audit_body does not write, in names and values */
    assert_true(AGENT_IS("\"event\":\"call\",\"\\u0061gent\":\"\\u0078\"",
                         "x"));
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"\\u00E9\\u00e9\"",
                         "\xc3\xa9\xc3\xa9"));
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"\\ud83d\\ude00\"",
                         "\xf0\x9f\x98\x80"));
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"\\u20ac\"",
                         "\xe2\x82\xac"));
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"\\/\\b\\f\\r\\t\"",
                         "/\b\f\r\t"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\"", "x"));

    /* an empty filter field is any value, or none */
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"\"", ""));
    assert_true(AGENT_IS("\"event\":\"call\"", ""));

    /* not JSON strings: no match */
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\\ud83d\"",
                          "\xef\xbf\xbd"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\\ude00x\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\\x41\"", "A"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\\u12\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"a\x01\"", "a\x01"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"a\xff\"", "a\xff"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\xc0\xaf\"",
                          "\xc0\xaf"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"\xed\xa0\x80\"",
                          "\xed\xa0\x80"));
}


static void
match_nested(void **state)
{
    (void) state;

    /* only a top-level member counts */
    assert_false(AGENT_IS("\"event\":\"call\",\"policy\":{\"agent\":\"x\"}",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"p\":{\"q\":{\"agent\":\"x\"}}",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"p\":[{\"agent\":\"x\"}]", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"tags\":[\"agent\",\"x\"]",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"reason\":"
                          "\"\\\",\\\"agent\\\":\\\"x\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"reason\":\"agent\",\"x\":1",
                          "x"));

    /* a nested one next to the top-level one */
    assert_true(AGENT_IS("\"event\":\"call\",\"p\":{\"agent\":\"x\"},"
                         "\"agent\":\"y\",\"q\":[{\"agent\":\"x\"}]", "y"));
    assert_false(AGENT_IS("\"event\":\"call\",\"p\":{\"agent\":\"x\"},"
                          "\"agent\":\"y\",\"q\":[{\"agent\":\"x\"}]", "x"));
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"y\",\"p\":{\"a\":"
                         "[1,-2.5e+3,0,true,false,null,{},[],\"}\"]}", "y"));

    /* names that only look alike */
    assert_false(AGENT_IS("\"event\":\"call\",\"agents\":\"x\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agen\":\"x\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"Agent\":\"x\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\\u0000\":\"x\"", "x"));
}


static void
match_malformed(void **state)
{
    size_t             len;
    const char        *line;
    char               body[512];
    int                i, n;
    ag_audit_filter_t  f;

    (void) state;

    /* values that are not strings */
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":5", "5"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":null", "null"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":[\"x\"]", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":{\"x\":1}", "x"));

    /* a filtered name twice is ambiguous */
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"agent\":\"x\"",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"\\u0061gent\":"
                          "\"y\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"event\":"
                          "\"call\"", "x"));

    /* JSON around it that is not JSON */
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",junk", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\" \"y\"", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":01", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":1.", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":-", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":1e", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":+1", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":tru", "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":[1,]",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":{\"a\"}",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":[1}",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",1:2", "x"));
    /* an object left open swallows prev and hash: the line never closes */
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":{\"a\":1",
                          "x"));
    assert_false(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":\"a", "x"));

    /* JSON whitespace is JSON */
    assert_true(AGENT_IS("\"event\":\"call\" ,\t\"agent\" : \"x\" ,\"n\":"
                         " [ 1 , { } ] ", "x"));
    assert_true(AGENT_IS("\"event\":\"call\",\"agent\":\"x\",\"n\":-0.5E-3",
                         "x"));

    /* nesting: as deep as ag_json_parse takes, no deeper */
    for (n = 62; n <= 64; n++) {
        len = (size_t) snprintf(body, sizeof(body),
                                "\"event\":\"call\",\"agent\":\"x\",\"d\":");
        for (i = 0; i < n; i++) {
            body[len++] = i % 2 ? '[' : '{';
            if (i % 2 == 0) {
                memcpy(body + len, "\"k\":", 4);
                len += 4;
            }
        }
        body[len++] = '1';
        for (i = n - 1; i >= 0; i--) {
            body[len++] = i % 2 ? ']' : '}';
        }
        body[len] = '\0';

        assert_int_equal(AGENT_IS(body, "x"), n + 1 <= 64);
    }

    /* not a record's form: never, even for no filter */
    memset(&f, 0, sizeof(f));
    assert_false(ag_audit_filter_match(&f, "not a record", 12));
    assert_false(ag_audit_filter_match(&f, "", 0));
    assert_false(ag_audit_filter_match(NULL, "{}", 2));

    line = mk("\"event\":\"call\",\"agent\":\"x\"", &len);
    assert_true(ag_audit_filter_match(&f, line, len));
    assert_true(ag_audit_filter_match(NULL, line, len));
    assert_false(ag_audit_filter_match(&f, line, len - 1));
    assert_false(ag_audit_filter_match(&f, line + 1, len - 1));
    f.agent = S("x");
    assert_true(ag_audit_filter_match(&f, line, len));
    f.event = S("cal");
    assert_false(ag_audit_filter_match(&f, line, len));
    f.event = S("calls");
    assert_false(ag_audit_filter_match(&f, line, len));

    /* the form's check only, when nothing is filtered: cheap, on purpose */
    line = mk("\"event\":\"call\",junk", &len);
    memset(&f, 0, sizeof(f));
    assert_true(ag_audit_filter_match(&f, line, len));
    f.event = S("call");
    assert_false(ag_audit_filter_match(&f, line, len));
}


/* --- timestamps ------------------------------------------------------------------- */

static int64_t
ts(const char *s)
{
    int64_t  us;

    us = -1;
    if (ag_audit_ts_parse(s, strlen(s), &us) != 0) {
        return INT64_MIN;
    }
    return us;
}


static void
ts_parse(void **state)
{
    size_t          i;
    char            out[AG_AUDIT_TS_LEN + 1];
    int64_t         us;
    static const int64_t  round[] = {
        0, 1, 999999, T0, INT64_C(951782400000000) /* 2000-02-29 */,
        INT64_C(4107542399999999) /* 2100-02-28T23:59:59.999999 */,
        INT64_C(253402300799999999)
    };
    static const char *const  bad[] = {
        "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-00-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-00T00:00:00Z",
        "2026-01-32T00:00:00Z", "2026-11-23T24:00:00Z", "2026-11-23T23:60:00Z",
        "2026-11-23T23:59:61Z", "2026-11-23 15:35:57Z", "2026-11-23T15:35:57",
        "2026-11-23T15:35:57+00:00", "2026-11-23T15:35:57.Z",
        "2026-11-23T15:35:57.1234567890Z", "2026-11-23T15:35:57.12a456Z",
        "2026-11-23T15:35:57ZZ", "2026-11-23T15:35:57.123456", "2026-11-23",
        "", "+026-11-23T15:35:57Z", "2026-1a-23T15:35:57Z",
        "2026-11-23T15:35:5 Z", "2026/11/23T15:35:57Z", " 2026-11-23T15:35:57Z",
        "2026-11-23T15:35:57.123456Z ", "2026-11-23T-1:35:57Z"
    };

    (void) state;

    assert_int_equal(ts("2026-11-23T15:35:57.123456Z"), T0);
    assert_int_equal(ts("2026-11-23T15:35:57Z"), T0 - 123456);
    assert_int_equal(ts("2026-11-23t15:35:57.123456z"), T0);
    assert_int_equal(ts("2026-11-23T15:35:57.1Z"), T0 - 23456);
    assert_int_equal(ts("2026-11-23T15:35:57.123Z"), T0 - 456);
    assert_int_equal(ts("2026-11-23T15:35:57.123456789Z"), T0);
    assert_int_equal(ts("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ts("1969-12-31T23:59:59Z"), -1000000);
    assert_int_equal(ts("2024-02-29T00:00:00Z"), INT64_C(1709164800000000));
    assert_int_equal(ts("2000-02-29T00:00:00Z"), INT64_C(951782400000000));
    assert_int_equal(ts("9999-12-31T23:59:59.999999Z"),
                     INT64_C(253402300799999999));
    /* a leap second is the second before */
    assert_int_equal(ts("2016-12-31T23:59:60Z"), ts("2016-12-31T23:59:59Z"));

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ts(bad[i]) != INT64_MIN) {
            fail_msg("\"%s\" was taken", bad[i]);
        }
    }

    /* the length given is the text: nothing read past it, nothing after */
    assert_int_equal(ag_audit_ts_parse("2026-11-23T15:35:57Zjunk", 20, &us), 0);
    assert_int_equal(us, T0 - 123456);
    assert_int_equal(ag_audit_ts_parse("2026-11-23T15:35:57.123456Z", 26, &us),
                     -1);
    assert_int_equal(ag_audit_ts_parse("2026-11-23T15:35:57.123456Z", 19, &us),
                     -1);

    for (i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
        ag_audit_ts(round[i], out);
        assert_int_equal(ag_audit_ts_parse(out, AG_AUDIT_TS_LEN, &us), 0);
        assert_int_equal(us, round[i]);
    }

    /* every day of a leap year and of a common one, at a time of day */
    for (us = INT64_C(1704067200000000);               /* 2024-01-01 */
         us < INT64_C(1767225600000000);               /* 2026-01-01 */
         us += INT64_C(86400000000))
    {
        int64_t  back;

        ag_audit_ts(us + INT64_C(45296789012), out);
        assert_int_equal(ag_audit_ts_parse(out, AG_AUDIT_TS_LEN, &back), 0);
        assert_int_equal(back, us + INT64_C(45296789012));
    }
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(newest_first),
        cmocka_unit_test(limit_and_continue),
        cmocka_unit_test(filters),
        cmocka_unit_test(since),
        cmocka_unit_test(max_bytes_and_next),
        cmocka_unit_test(before_offsets),
        cmocka_unit_test(empty_file),
        cmocka_unit_test(partial_last_line),
        cmocka_unit_test(skipped_lines),
        cmocka_unit_test(chunk_boundaries),
        cmocka_unit_test(match_escaped),
        cmocka_unit_test(match_nested),
        cmocka_unit_test(match_malformed),
        cmocka_unit_test(ts_parse),
    };
    int  rc;

    rc = cmocka_run_group_tests_name("audit_read", tests, NULL, NULL);
    filter_free();

    return rc;
}
