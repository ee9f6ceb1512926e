/*
 * tools/list filtering on what a server sends back: ag_mcp_filter_message
 * on a JSON text, and the same input walked as a server-sent event stream
 * with ag_sse_event_len and ag_mcp_filter_event.
 *
 *   input: SEL TEXT
 *
 * SEL picks which tools the keep callback drops: 0 none, 0xff all, any
 * other value the tools whose name holds that byte.
 *
 * Oracles, against references written here:
 *
 * - ag_mcp_filter_message fails exactly when ag_json_parse refuses the
 *   text; otherwise its result equals a reference filter (every response's
 *   result.tools without the entries that are not objects with a string
 *   name or that the callback drops), byte for byte once both are encoded
 *   compactly in their own key order; it reports a change exactly when the
 *   reference removed something; the callback sees 64 hex digits, the pin
 *   ag_mcp_tool_digest gives, for names in list order;
 * - ag_sse_event_len cuts the stream where a reference line splitter sees
 *   the first blank line (a final "\r" counting as a line end);
 * - ag_mcp_filter_event on each event (and on the rest of the stream, as
 *   at its end) agrees with ag_mcp_filter_message on the data a reference
 *   SSE parser reads; when it changes the event, the result is exactly
 *   one complete event with "\n" line ends, the same other fields in the
 *   same order, one data line holding the filtered message, and filtering
 *   it again changes nothing.
 */

#include "fuzz.h"
#include "ag_json.h"
#include "ag_mcp.h"


#define AG_FZ_FIELDS  8192
#define AG_FZ_TOOLS   4096


/* What the callback must see, in order: each listed definition that is an
   object with a string name, and its pin. */
typedef struct {
    const char  *name;
    size_t       len;
    char         hex[AG_MCP_DIGEST_HEX];
} ag_fz_want_t;

typedef struct {
    int            sel;
    ag_fz_want_t  *want;
    size_t         nwant;
    size_t         next;
} ag_fz_keep_t;

static ag_fz_want_t  ag_fz_want[AG_FZ_TOOLS];


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


static int
ag_fz_drops(int sel, const char *name, size_t len)
{
    if (sel == 0) {
        return 0;
    }
    if (sel == 0xff) {
        return 1;
    }
    return memchr(name, sel, len) != NULL;
}


static int
ag_fz_keep(void *data, ag_str_t name, const char *hex)
{
    ag_fz_keep_t        *k = data;
    const ag_fz_want_t  *w;

    ag_fuzz_assert(strlen(hex) == AG_MCP_DIGEST_HEX);

    if (k->want != NULL) {
        ag_fuzz_assert(k->next < k->nwant);
        w = &k->want[k->next++];
        ag_fuzz_assert(name.len == w->len
                       && memcmp(name.p, w->name, w->len) == 0);
        ag_fuzz_assert(memcmp(hex, w->hex, AG_MCP_DIGEST_HEX) == 0);
    }

    return !ag_fz_drops(k->sel, name.p, name.len);
}


static int
ag_fz_keep_all(void *data, ag_str_t name, const char *hex)
{
    (void) data;
    (void) name;
    (void) hex;
    return 1;
}


/* The definitions the callback must see, from the parsed text. */
static size_t
ag_fz_expect(json_t *root)
{
    size_t   i, n, t, nwant;
    json_t  *msg, *tools, *e, *name;

    nwant = 0;
    n = json_is_array(root) ? json_array_size(root) : 1;

    for (i = 0; i < n; i++) {
        msg = json_is_array(root) ? json_array_get(root, i) : root;
        tools = json_object_get(json_object_get(msg, "result"), "tools");

        for (t = 0; t < json_array_size(tools); t++) {
            e = json_array_get(tools, t);
            name = json_object_get(e, "name");
            if (!json_is_object(e) || !json_is_string(name)) {
                continue;
            }
            ag_fuzz_assert(nwant < AG_FZ_TOOLS);
            ag_fz_want[nwant].name = json_string_value(name);
            ag_fz_want[nwant].len = json_string_length(name);
            ag_fuzz_assert(ag_mcp_tool_digest(e, ag_fz_want[nwant].hex) == 0);
            nwant++;
        }
    }

    return nwant;
}


/* The reference filter, in place: 1 if something went. */
static int
ag_fz_ref_filter(json_t *root, int sel)
{
    int      changed;
    size_t   i, n, t;
    json_t  *msg, *result, *tools, *kept, *e, *name;

    changed = 0;
    n = json_is_array(root) ? json_array_size(root) : 1;

    for (i = 0; i < n; i++) {
        msg = json_is_array(root) ? json_array_get(root, i) : root;
        result = json_object_get(msg, "result");
        tools = json_object_get(result, "tools");
        if (!json_is_array(tools)) {
            continue;
        }

        kept = json_array();
        ag_fuzz_assert(kept != NULL);
        for (t = 0; t < json_array_size(tools); t++) {
            e = json_array_get(tools, t);
            name = json_object_get(e, "name");
            if (json_is_object(e) && json_is_string(name)
                && !ag_fz_drops(sel, json_string_value(name),
                                json_string_length(name)))
            {
                ag_fuzz_assert(json_array_append(kept, e) == 0);
            } else {
                changed = 1;
            }
        }
        ag_fuzz_assert(json_object_set_new(result, "tools", kept) == 0);
    }

    return changed;
}


/* ag_mcp_filter_message against the reference; returns its rc, and its
   output in *out (the caller frees). */
static int
ag_fz_filter(const char *text, size_t len, int sel, char **out,
    size_t *outlen)
{
    int            rc, ref;
    char           err[256], *a, *b;
    json_t        *root, *mine;
    ag_fz_keep_t   k;

    memset(&k, 0, sizeof(k));
    k.sel = sel;

    root = ag_json_parse(text, len, err, sizeof(err));
    if (root != NULL) {
        k.want = ag_fz_want;
        k.nwant = ag_fz_expect(root);
    }

    rc = ag_mcp_filter_message(text, len, ag_fz_keep, &k, out, outlen);

    if (root == NULL) {
        ag_fuzz_assert(rc == -1 && *out == NULL);
        return rc;
    }
    ag_fuzz_assert(rc == 0 || rc == 1);
    ag_fuzz_assert(k.next == k.nwant);

    ref = ag_fz_ref_filter(root, sel);
    ag_fuzz_assert(rc == ref);

    if (rc == 0) {
        ag_fuzz_assert(*out == NULL && *outlen == 0);
        json_decref(root);
        return rc;
    }

    ag_fuzz_assert(*out != NULL && strlen(*out) == *outlen);
    mine = ag_json_parse(*out, *outlen, err, sizeof(err));
    if (mine == NULL) {
        ag_fuzz_fail("filtered text is not valid JSON: %s", err);
    }

    /* the same values in the same order, compact */
    a = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    b = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
    ag_fuzz_assert(a != NULL && b != NULL);
    if (strcmp(a, b) != 0 || strcmp(b, *out) != 0) {
        ag_fuzz_fail("filtered\n  %s\nreference\n  %s", *out, a);
    }

    free(a);
    free(b);
    json_decref(mine);
    json_decref(root);

    return rc;
}


/* --- the reference SSE reader ------------------------------------------------ */

typedef struct {
    const char  *p;
    size_t       len;
} ag_fz_line_t;


/* Lines up to the first blank one (which ends the event) or the end;
   *end gets where reading stopped. */
static size_t
ag_fz_lines(const char *s, size_t len, ag_fz_line_t *lines, size_t max,
    size_t *end, int *blank)
{
    size_t  i, start, n;

    n = 0;
    start = 0;
    *blank = 0;

    for (i = 0; i < len; i++) {
        if (s[i] != '\r' && s[i] != '\n') {
            continue;
        }
        if (i == start) {
            *blank = 1;
        } else if (n < max) {
            lines[n].p = s + start;
            lines[n].len = i - start;
            n++;
        }
        if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') {
            i++;
        }
        start = i + 1;
        if (*blank) {
            *end = start;
            return n;
        }
    }

    if (start < len && n < max) {
        lines[n].p = s + start;
        lines[n].len = len - start;
        n++;
    }
    *end = len;
    return n;
}


/* HTML's field split: a "data" field and its value (one leading space
   dropped), or not. */
static int
ag_fz_is_data(const ag_fz_line_t *l, const char **v, size_t *vlen)
{
    const char  *colon;
    size_t       flen;

    colon = memchr(l->p, ':', l->len);
    flen = colon ? (size_t) (colon - l->p) : l->len;
    if (flen != 4 || memcmp(l->p, "data", 4) != 0) {
        return 0;
    }
    if (colon == NULL) {
        *v = l->p + l->len;
        *vlen = 0;
        return 1;
    }
    *v = colon + 1;
    *vlen = l->len - 5;
    if (*vlen > 0 && **v == ' ') {
        (*v)++;
        (*vlen)--;
    }
    return 1;
}


static ag_fz_line_t  ag_fz_in[AG_FZ_FIELDS], ag_fz_out[AG_FZ_FIELDS];


static void
ag_fz_event(const char *ev, size_t len, int sel)
{
    int            rc, ref, blank;
    char          *out, *msg, *again, *data;
    size_t         outlen, msglen, againlen, nin, nout, end, i, k, bom,
                   dlen, vlen, ndata;
    const char    *v;
    ag_fz_keep_t   kd;

    memset(&kd, 0, sizeof(kd));
    kd.sel = sel;

    rc = ag_mcp_filter_event(ev, len, ag_fz_keep, &kd, &out, &outlen);

    /* the reference: the data lines joined with "\n" */
    bom = (len >= 3 && memcmp(ev, "\xef\xbb\xbf", 3) == 0) ? 3 : 0;
    nin = ag_fz_lines(ev + bom, len - bom, ag_fz_in, AG_FZ_FIELDS, &end,
                      &blank);
    ag_fuzz_assert(nin < AG_FZ_FIELDS);

    if (end + bom < len) {
        ag_fuzz_assert(rc == -1 && out == NULL);
        return;
    }

    data = malloc(len + 1);
    ag_fuzz_assert(data != NULL);
    dlen = 0;
    ndata = 0;
    for (i = 0; i < nin; i++) {
        if (ag_fz_is_data(&ag_fz_in[i], &v, &vlen)) {
            if (ndata++ > 0) {
                data[dlen++] = '\n';
            }
            memcpy(data + dlen, v, vlen);
            dlen += vlen;
        }
    }

    if (dlen == 0) {
        ag_fuzz_assert(rc == 0 && out == NULL);
        free(data);
        return;
    }

    ref = ag_fz_filter(data, dlen, sel, &msg, &msglen);
    free(data);
    ag_fuzz_assert(rc == ref);

    if (rc != 1) {
        ag_fuzz_assert(out == NULL && outlen == 0);
        free(msg);
        return;
    }

    /* one whole event, LF only, ending in a blank line */
    ag_fuzz_assert(outlen >= bom + 2 && out[outlen - 1] == '\n'
                   && out[outlen - 2] == '\n');
    ag_fuzz_assert(memcmp(out, ev, bom) == 0);
    ag_fuzz_assert(memchr(out, '\r', outlen) == NULL);
    ag_fuzz_assert(ag_sse_event_len(out, outlen) == outlen);

    nout = ag_fz_lines(out + bom, outlen - bom, ag_fz_out, AG_FZ_FIELDS, &end,
                       &blank);
    ag_fuzz_assert(blank && end + bom == outlen);

    /* the other fields as they were; the message where the data began */
    for (i = 0, k = 0, ndata = 0; i < nin; i++) {
        if (ag_fz_is_data(&ag_fz_in[i], &v, &vlen)) {
            if (ndata++ > 0) {
                continue;
            }
            ag_fuzz_assert(k < nout);
            ag_fuzz_assert(ag_fz_out[k].len == 6 + msglen
                           && memcmp(ag_fz_out[k].p, "data: ", 6) == 0
                           && memcmp(ag_fz_out[k].p + 6, msg, msglen) == 0);
        } else {
            ag_fuzz_assert(k < nout && ag_fz_out[k].len == ag_fz_in[i].len
                           && memcmp(ag_fz_out[k].p, ag_fz_in[i].p,
                                     ag_fz_in[i].len) == 0);
        }
        k++;
    }
    ag_fuzz_assert(k == nout);

    /* filtered once is filtered */
    ag_fuzz_assert(ag_mcp_filter_event(out, outlen, ag_fz_keep, &kd, &again,
                                       &againlen) == 0);
    ag_fuzz_assert(ag_mcp_filter_event(out, outlen, ag_fz_keep_all, NULL,
                                       &again, &againlen) == 0);

    free(msg);
    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          sel, blank;
    char        *out;
    size_t       outlen, off, n, end;
    const char  *text;

    if (size < 1) {
        return 0;
    }

    sel = data[0];
    text = (const char *) data + 1;
    size--;

    if (ag_fz_filter(text, size, sel, &out, &outlen) == 1) {
        free(out);
    }

    /* the same bytes as a stream, event by event */
    for (off = 0; off < size; off += n) {
        n = ag_sse_event_len(text + off, size - off);

        ag_fz_lines(text + off, size - off, ag_fz_in, AG_FZ_FIELDS, &end,
                    &blank);
        if (n == 0) {
            ag_fuzz_assert(!blank);
            break;
        }
        ag_fuzz_assert(blank && n == end);

        ag_fz_event(text + off, n, sel);
    }

    /* what is left when the stream ends */
    if (off < size) {
        ag_fz_event(text + off, size - off, sel);
    }

    return 0;
}
