/*
 * ag_audit_read_back on fuzzed audit files, and ag_audit_filter_match on
 * fuzzed lines.
 *
 * Input: FLAGS FLAGS2 FILE
 *   FLAGS & 7           limit (0: none)
 *   (FLAGS >> 3) & 7    the filter, one of ag_fuzz_filters
 *   FLAGS >> 6          since: none, the first seed record's time, two
 *                       seconds later, the last time RFC 3339 can write
 *   FLAGS2 & 7          max_bytes, one of ag_fuzz_max_bytes
 *   (FLAGS2 >> 3) & 3   before: the end (-1), the start of the last line,
 *                       the start of the middle line, or a byte that is not
 *                       a line's start (which must be refused)
 *   FLAGS2 >> 5         FILE is repeated 1 to 200 times, so that lines
 *                       straddle the 64 KiB chunks the reader uses
 *   a 0xfe byte in FILE becomes 64 KiB of 'x': lines longer than a chunk,
 *   or (four of them) than any record
 *
 * Oracles: the file read in pages (limit, max_bytes, from each *next) yields
 * exactly the lines a plain forward model selects, newest first, each once:
 * whole lines only, none longer than AG_AUDIT_LINE_MAX, of a record's form,
 * matching the filter, up to the first one older than since. Every call
 * stays within limit and max_bytes, and *next is a line's start.
 *
 * FILE itself as one line: without a filter it matches exactly when it has a
 * record's form. When ag_json_parse takes it too, a filter of its own
 * top-level member values matches, and one value changed does not; when a
 * filter matches and jansson can read the line, the members are those.
 */

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "ag_audit.h"
#include "ag_json.h"


#define AG_FUZZ_T0           INT64_C(1795448157123456)
#define AG_FUZZ_FILE_MAX     (4 * 1024 * 1024)
#define AG_FUZZ_EXPAND       65536
#define AG_FUZZ_MAX_CALLS    64         /* pages, then the rest at once */


static const char *const  ag_fuzz_filters[8][5] = {
    /* agent, task, tool, decision, event */
    { NULL, NULL, NULL, NULL, NULL },
    { "a", NULL, NULL, NULL, NULL },
    { NULL, NULL, NULL, NULL, "call" },
    { "a", NULL, "t1", NULL, NULL },
    { NULL, NULL, NULL, "deny", NULL },
    { "a\"b", NULL, NULL, NULL, NULL },
    { NULL, "k1", NULL, NULL, "result" },
    { "\xc3\xa9", NULL, NULL, NULL, NULL },
};

static const int64_t  ag_fuzz_since[4] = {
    0, AG_FUZZ_T0, AG_FUZZ_T0 + 2000000, INT64_C(253402300799999999)
};

static const size_t  ag_fuzz_max_bytes[8] = {
    (size_t) 1 << 30, 0, 1, 64, 300, 1000, 65536, 70000
};

static const size_t  ag_fuzz_repeat[8] = { 1, 1, 2, 3, 9, 17, 64, 200 };


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


static ag_str_t
ag_fuzz_str(const char *s)
{
    ag_str_t  r;

    r.p = s;
    r.len = s ? strlen(s) : 0;
    return r;
}


/* --- the file --------------------------------------------------------------------- */

typedef struct {
    const char  *p;
    size_t       len;
} ag_fuzz_line_t;

typedef struct {
    ag_fuzz_line_t  *v;
    size_t           n;
    size_t           cap;
} ag_fuzz_lines_t;


static void
ag_fuzz_lines_push(ag_fuzz_lines_t *l, const char *p, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(ag_fuzz_line_t));
        if (l->v == NULL) {
            ag_fuzz_fail("out of memory");
        }
    }

    l->v[l->n].p = p;
    l->v[l->n].len = len;
    l->n++;
}


/* FILE repeated, with its 0xfe bytes expanded; NULL if it would be large */
static char *
ag_fuzz_file(const uint8_t *data, size_t size, size_t repeat, size_t *len)
{
    char    *f;
    size_t   i, r, n, one;

    one = 0;
    for (i = 0; i < size; i++) {
        one += data[i] == 0xfe ? AG_FUZZ_EXPAND : 1;
    }

    if (one > AG_FUZZ_FILE_MAX / repeat) {
        return NULL;
    }

    f = malloc(one * repeat + 1);
    if (f == NULL) {
        ag_fuzz_fail("out of memory");
    }

    n = 0;
    for (r = 0; r < repeat; r++) {
        for (i = 0; i < size; i++) {
            if (data[i] == 0xfe) {
                memset(f + n, 'x', AG_FUZZ_EXPAND);
                n += AG_FUZZ_EXPAND;
            } else {
                f[n++] = (char) data[i];
            }
        }
    }

    *len = n;
    return f;
}


static int
ag_fuzz_fd(const char *p, size_t len)
{
    int      fd;
    ssize_t  n;
    size_t   done;

    fd = memfd_create("agentgov-audit", 0);
    if (fd < 0) {
        ag_fuzz_fail("memfd_create: %s", strerror(errno));
    }

    for (done = 0; done < len; done += (size_t) n) {
        n = write(fd, p + done, len - done);
        if (n <= 0) {
            ag_fuzz_fail("write: %s", strerror(errno));
        }
    }

    return fd;
}


/*
 * The model: the lines of [0, end) from the last, each whole line (its '\n'
 * in the file) that is a record and matches, until one older than since.
 * Lines after the last '\n' of the file are being written: not read.
 */
static void
ag_fuzz_model(const char *file, off_t end, const ag_audit_filter_t *f,
    ag_fuzz_lines_t *out, off_t *stop)
{
    off_t            s, e;
    int64_t          ts;
    ag_audit_line_t  l;

    *stop = 0;

    while (end > 0 && file[end - 1] != '\n') {
        end--;
    }

    for (e = end - 1; e >= 0; e = s - 1) {
        /* the line [s, e), file[e] == '\n' */
        for (s = e; s > 0 && file[s - 1] != '\n'; s--) {
            /* void */
        }

        if (e - s > AG_AUDIT_LINE_MAX
            || ag_audit_line_parse(file + s, (size_t) (e - s), &l, NULL, 0)
               != 0)
        {
            continue;
        }

        if (f->since_us > 0) {
            if (ag_audit_ts_parse(l.ts.p, l.ts.len, &ts) != 0) {
                continue;
            }

            if (ts < f->since_us) {
                *stop = s;          /* where a scan ends, with *next 0 */
                return;
            }
        }

        if (ag_audit_filter_match(f, file + s, (size_t) (e - s))) {
            ag_fuzz_lines_push(out, file + s, (size_t) (e - s));
        }
    }
}


typedef struct {
    ag_fuzz_lines_t   got;       /* copies, owned */
    size_t            delivered; /* lines in the current call */
} ag_fuzz_got_t;


static int
ag_fuzz_handler(void *data, const char *line, size_t len)
{
    ag_fuzz_got_t  *g = data;

    ag_fuzz_assert(len <= AG_AUDIT_LINE_MAX);
    ag_fuzz_assert(memchr(line, '\n', len) == NULL);
    ag_fuzz_lines_push(&g->got, ag_fuzz_strndup(line, len), len);
    g->delivered++;

    return 0;
}


static void
ag_fuzz_read_back(const char *file, size_t size, int fd, off_t before,
    const ag_audit_filter_t *f, size_t limit, size_t max_bytes)
{
    int               rc;
    char              err[256];
    off_t             at, next, end, stop;
    size_t            i, calls, mb;
    ag_fuzz_got_t     g;
    ag_fuzz_lines_t   want;

    memset(&g, 0, sizeof(g));
    memset(&want, 0, sizeof(want));

    end = before < 0 ? (off_t) size : before;
    ag_fuzz_model(file, end, f, &want, &stop);

    at = before;

    for (calls = 0; ; calls++) {
        mb = max_bytes;

        /* many small pages: the rest in one, which continues as well */
        if (calls == AG_FUZZ_MAX_CALLS) {
            limit = 0;
            max_bytes = size + 1;
            mb = max_bytes;
        }

        g.delivered = 0;
        next = -2;
        rc = ag_audit_read_back(fd, at, f, limit, mb, ag_fuzz_handler, &g,
                                &next, err, sizeof(err));
        if (rc != 0) {
            ag_fuzz_fail("read_back from %lld: %s", (long long) at, err);
        }

        if (next != 0 && next == (at < 0 ? (off_t) size : at)) {
            /* nothing moved: a line longer than max_bytes, so take more */
            ag_fuzz_assert(g.delivered == 0);
            mb = size + 1;
            rc = ag_audit_read_back(fd, at, f, limit, mb, ag_fuzz_handler, &g,
                                    &next, err, sizeof(err));
            ag_fuzz_assert(rc == 0);
        }

        ag_fuzz_assert(next >= 0 && next <= (at < 0 ? (off_t) size : at));
        ag_fuzz_assert(next == 0 || file[next - 1] == '\n');
        /* 0 is also "since ended it", once the scan got to that line */
        ag_fuzz_assert((at < 0 ? (off_t) size : at) - (next ? next : stop)
                       <= (off_t) mb);
        ag_fuzz_assert(limit == 0 || g.delivered <= limit);

        if (next == 0) {
            break;
        }

        ag_fuzz_assert(next < (at < 0 ? (off_t) size : at));
        at = next;
    }

    if (g.got.n != want.n) {
        ag_fuzz_fail("read %zu lines, the model %zu", g.got.n, want.n);
    }

    for (i = 0; i < want.n; i++) {
        if (g.got.v[i].len != want.v[i].len
            || memcmp(g.got.v[i].p, want.v[i].p, want.v[i].len) != 0)
        {
            ag_fuzz_fail("line %zu differs from the model", i);
        }
    }

    if (ag_fuzz_debug()) {
        fprintf(stderr, "read_back: %zu bytes, before %lld, limit %zu, "
                "max_bytes %zu: %zu lines in %zu calls\n", size,
                (long long) before, limit, max_bytes, want.n, calls + 1);
    }

    for (i = 0; i < g.got.n; i++) {
        free((char *) g.got.v[i].p);
    }
    free(g.got.v);
    free(want.v);
}


/* --- one line ------------------------------------------------------------------- */

static const char *const  ag_fuzz_names[5] = {
    "agent", "task", "tool", "decision", "event"
};


static ag_str_t *
ag_fuzz_field(ag_audit_filter_t *f, int i)
{
    switch (i) {
    case 0:  return &f->agent;
    case 1:  return &f->task;
    case 2:  return &f->tool;
    case 3:  return &f->decision;
    default: return &f->event;
    }
}


static void
ag_fuzz_filter_line(const char *line, size_t len)
{
    int                i, k, form, all;
    char               err[256], *changed;
    json_t            *root, *v;
    ag_audit_line_t    l;
    ag_audit_filter_t  f;

    memset(&f, 0, sizeof(f));
    form = ag_audit_line_parse(line, len, &l, err, sizeof(err)) == 0;

    ag_fuzz_assert(ag_audit_filter_match(&f, line, len) == form);
    ag_fuzz_assert(ag_audit_filter_match(NULL, line, len) == form);

    /* the converse: a match is what jansson reads, where it can */
    for (k = 1; k < 8; k++) {
        for (i = 0; i < 5; i++) {
            *ag_fuzz_field(&f, i) = ag_fuzz_str(ag_fuzz_filters[k][i]);
        }

        if (!ag_audit_filter_match(&f, line, len)) {
            continue;
        }

        ag_fuzz_assert(form);

        root = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
        if (root == NULL) {
            continue;
        }

        for (i = 0; i < 5; i++) {
            if (ag_fuzz_filters[k][i] == NULL) {
                continue;
            }

            v = json_object_get(root, ag_fuzz_names[i]);
            ag_fuzz_assert(json_is_string(v)
                           && json_string_length(v)
                              == strlen(ag_fuzz_filters[k][i])
                           && memcmp(json_string_value(v),
                                     ag_fuzz_filters[k][i],
                                     json_string_length(v)) == 0);
        }

        json_decref(root);
    }

    if (!form) {
        return;
    }

    root = ag_json_parse(line, len, err, sizeof(err));
    if (root == NULL) {
        return;
    }

    ag_fuzz_assert(json_is_object(root));

    /* each member alone: its own value matches, another does not */
    all = 1;

    for (i = 0; i < 5; i++) {
        memset(&f, 0, sizeof(f));
        v = json_object_get(root, ag_fuzz_names[i]);

        if (!json_is_string(v) || json_string_length(v) == 0) {
            /* absent, not a string, or "": a filter "x" is none of them */
            all = 0;
            ag_fuzz_field(&f, i)->p = "x";
            ag_fuzz_field(&f, i)->len = 1;
            ag_fuzz_assert(!ag_audit_filter_match(&f, line, len));
            continue;
        }

        ag_fuzz_field(&f, i)->p = json_string_value(v);
        ag_fuzz_field(&f, i)->len = json_string_length(v);

        if (!ag_audit_filter_match(&f, line, len)) {
            ag_fuzz_fail("%s \"%s\" does not match its own line",
                         ag_fuzz_names[i], json_string_value(v));
        }

        changed = ag_fuzz_strndup(json_string_value(v),
                                  json_string_length(v) + 1);
        changed[json_string_length(v)] = 'x';
        ag_fuzz_field(&f, i)->p = changed;
        ag_fuzz_field(&f, i)->len = json_string_length(v) + 1;
        ag_fuzz_assert(!ag_audit_filter_match(&f, line, len));

        ag_fuzz_field(&f, i)->len = json_string_length(v) - 1;
        if (json_string_length(v) > 1) {
            ag_fuzz_assert(!ag_audit_filter_match(&f, line, len));
        }
        free(changed);
    }

    /* all five together */
    if (all) {
        memset(&f, 0, sizeof(f));
        for (i = 0; i < 5; i++) {
            v = json_object_get(root, ag_fuzz_names[i]);
            ag_fuzz_field(&f, i)->p = json_string_value(v);
            ag_fuzz_field(&f, i)->len = json_string_length(v);
        }
        ag_fuzz_assert(ag_audit_filter_match(&f, line, len));
    }

    json_decref(root);
}


/* --- the input -------------------------------------------------------------------- */

/* The offset just after the n-th '\n' (0 for n = 0): a line's start. */
static off_t
ag_fuzz_after_nl(const char *file, size_t len, size_t n)
{
    size_t  i;

    for (i = 0; n > 0 && i < len; i++) {
        if (file[i] == '\n') {
            n--;
        }
    }

    return (off_t) i;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                i, fd, rc, pick;
    char              *file, err[256];
    off_t              before, next, s;
    size_t             len, nl, k, limit;
    ag_audit_filter_t  f;

    if (size < 2) {
        return 0;
    }

    ag_fuzz_filter_line((const char *) data + 2, size - 2);

    file = ag_fuzz_file(data + 2, size - 2, ag_fuzz_repeat[data[1] >> 5],
                        &len);
    if (file == NULL) {
        return 0;
    }

    memset(&f, 0, sizeof(f));
    for (i = 0; i < 5; i++) {
        *ag_fuzz_field(&f, i) = ag_fuzz_str(ag_fuzz_filters[(data[0] >> 3) & 7][i]);
    }
    f.since_us = ag_fuzz_since[data[0] >> 6];
    limit = data[0] & 7;

    fd = ag_fuzz_fd(file, len);

    /* where to start */
    nl = 0;
    for (k = 0; k < len; k++) {
        nl += file[k] == '\n';
    }

    pick = (data[1] >> 3) & 3;
    before = -1;

    if (pick == 1) {
        before = ag_fuzz_after_nl(file, len, nl ? nl - 1 : 0);

    } else if (pick == 2) {
        before = ag_fuzz_after_nl(file, len, nl / 2);

    } else if (pick == 3) {
        for (s = 1; s <= (off_t) len && file[s - 1] == '\n'; s++) {
            /* void */
        }

        if (s <= (off_t) len) {
            rc = ag_audit_read_back(fd, s, &f, limit, (size_t) 1 << 30,
                                    ag_fuzz_handler, NULL, &next, err,
                                    sizeof(err));
            ag_fuzz_assert(rc == -1 && err[0] != '\0');
        }

        /* and the end, one past, and before the start */
        rc = ag_audit_read_back(fd, (off_t) len + 1, &f, limit, 100,
                                ag_fuzz_handler, NULL, &next, err,
                                sizeof(err));
        ag_fuzz_assert(rc == -1);
        rc = ag_audit_read_back(fd, -2, &f, limit, 100, ag_fuzz_handler, NULL,
                                &next, err, sizeof(err));
        ag_fuzz_assert(rc == -1);
    }

    ag_fuzz_assert(before <= 0 || file[before - 1] == '\n');

    ag_fuzz_read_back(file, len, fd, before, &f, limit,
                      ag_fuzz_max_bytes[data[1] & 7]);

    close(fd);
    free(file);

    return 0;
}
