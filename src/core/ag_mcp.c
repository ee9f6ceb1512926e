/*
 * MCP (SPEC sections 2, 5, 6 and 9): JSON-RPC 2.0 bodies an agent posts,
 * the answers given in place of refused messages, the digest MCP grants are
 * found by, and the filtering of tools/list results on their way back.
 *
 * Every message is checked before any of it is acted on: a batch holding
 * one bad member is refused whole, because the tool behind the gateway
 * might act on the members the gateway would not have read.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ag_json.h"
#include "ag_mcp.h"
#include "ag_util.h"


#define AG_MCP_CANON  (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

#define AG_MCP_STR_(x)  #x
#define AG_MCP_STR(x)   AG_MCP_STR_(x)
#define AG_MCP_NAME_RULE                                                       \
    "a non-empty string of at most " AG_MCP_STR(AG_MCP_NAME_MAX) " bytes"

#define AG_SSE_BOM      "\xef\xbb\xbf"
#define AG_SSE_BOM_LEN  3


/* --- parsing ------------------------------------------------------------- */

static int
ag_mcp_fail(ag_mcp_error_t *e, int code, json_t *id, size_t member,
    const char *msg)
{
    char  *c;

    e->code = code;
    e->id = id ? json_incref(id) : NULL;

    /* member 0: a single message, whose errors need no name */
    if (member > 0) {
        snprintf(e->message, sizeof(e->message), "message %zu: %s", member,
                 msg);
    } else {
        snprintf(e->message, sizeof(e->message), "%s", msg);
    }

    /* the parser's errors quote the agent's bytes, and truncation may cut
       a sequence: printable ASCII always encodes into the answer */
    for (c = e->message; *c != '\0'; c++) {
        if (*c < 0x20 || *c > 0x7e) {
            *c = '?';
        }
    }

    return -1;
}


static int
ag_mcp_id_ok(json_t *id)
{
    return json_is_integer(id)
           || (json_is_string(id) && json_string_length(id) <= AG_MCP_ID_MAX);
}


/* A method, tool, prompt name or URI: a non-empty string of at most
   AG_MCP_NAME_MAX bytes. */
static int
ag_mcp_name(json_t *v, ag_str_t *out)
{
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > AG_MCP_NAME_MAX)
    {
        return -1;
    }

    out->p = json_string_value(v);
    out->len = json_string_length(v);

    return 0;
}


static int
ag_mcp_is(ag_str_t s, const char *lit)
{
    size_t  n = strlen(lit);

    return s.len == n && memcmp(s.p, lit, n) == 0;
}


/* What tools/call, resources/read and prompts/get need in their params: the
   names that rules match, so a message without them cannot be decided. */
static const char *
ag_mcp_params(ag_mcp_msg_t *m, json_t *params)
{
    json_t  *v;

    if (ag_mcp_is(m->method, "tools/call")) {
        v = json_object_get(params, "name");
        if (ag_mcp_name(v, &m->tool) != 0) {
            return "tools/call needs params.name, " AG_MCP_NAME_RULE;
        }

        v = json_object_get(params, "arguments");
        if (v != NULL && !json_is_object(v)) {
            return "tools/call params.arguments must be an object";
        }
        m->args = v;

    } else if (ag_mcp_is(m->method, "resources/read")) {
        v = json_object_get(params, "uri");
        if (ag_mcp_name(v, &m->resource) != 0) {
            return "resources/read needs params.uri, " AG_MCP_NAME_RULE;
        }

    } else if (ag_mcp_is(m->method, "prompts/get")) {
        v = json_object_get(params, "name");
        if (ag_mcp_name(v, &m->prompt) != 0) {
            return "prompts/get needs params.name, " AG_MCP_NAME_RULE;
        }
    }

    return NULL;
}


/* One message; NULL when it is valid, else why not (m->id is then set when
   the id could be read). */
static const char *
ag_mcp_message(json_t *v, ag_mcp_msg_t *m)
{
    json_t  *id, *rpc, *method, *params, *result, *error;

    memset(m, 0, sizeof(ag_mcp_msg_t));

    if (!json_is_object(v)) {
        return "not an object";
    }

    /* the id first, so that every later refusal can answer it */
    id = json_object_get(v, "id");
    if (id != NULL) {
        if (!ag_mcp_id_ok(id)) {
            return json_is_string(id)
                   ? "id longer than " AG_MCP_STR(AG_MCP_ID_MAX) " bytes"
                   : "id must be a string or an integer";
        }
        m->id = id;
    }

    rpc = json_object_get(v, "jsonrpc");
    if (rpc == NULL) {
        return "jsonrpc is missing";
    }
    if (!json_is_string(rpc) || json_string_length(rpc) != 3
        || memcmp(json_string_value(rpc), "2.0", 3) != 0)
    {
        return "jsonrpc must be \"2.0\"";
    }

    method = json_object_get(v, "method");
    result = json_object_get(v, "result");
    error = json_object_get(v, "error");

    if (method == NULL) {
        if (result == NULL && error == NULL) {
            return "method is missing";
        }
        if (id == NULL) {
            return "a response needs an id";
        }
        if (result != NULL && error != NULL) {
            return "a response has result or error, not both";
        }
        m->kind = AG_MCP_RESPONSE;
        return NULL;
    }

    if (!json_is_string(method) || json_string_length(method) == 0) {
        return "method must be a non-empty string";
    }
    if (ag_mcp_name(method, &m->method) != 0) {
        return "method longer than " AG_MCP_STR(AG_MCP_NAME_MAX) " bytes";
    }

    /* read two ways, as a request and as a response, it is neither */
    if (result != NULL || error != NULL) {
        return "a request has no result or error";
    }

    params = json_object_get(v, "params");
    if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
        return "params must be an object or an array";
    }

    m->kind = id ? AG_MCP_REQUEST : AG_MCP_NOTIFICATION;

    return ag_mcp_params(m, params);
}


int
ag_mcp_parse(const char *data, size_t len, ag_mcp_body_t *b,
    ag_mcp_error_t *e)
{
    char          err[200], msg[200];
    size_t        i, k, n;
    json_t       *root, *v;
    const char   *why;
    ag_mcp_msg_t *msgs;

    memset(b, 0, sizeof(ag_mcp_body_t));
    memset(e, 0, sizeof(ag_mcp_error_t));

    root = ag_json_parse(data, len, err, sizeof(err));
    if (root == NULL) {
        return ag_mcp_fail(e, AG_MCP_PARSE_ERROR, NULL, 0, err);
    }

    if (json_is_array(root)) {
        n = json_array_size(root);
        if (n == 0) {
            json_decref(root);
            return ag_mcp_fail(e, AG_MCP_INVALID_REQUEST, NULL, 0,
                               "empty batch");
        }
        if (n > AG_MCP_BATCH_MAX) {
            snprintf(msg, sizeof(msg), "batch of %zu messages, at most %d", n,
                     AG_MCP_BATCH_MAX);
            json_decref(root);
            return ag_mcp_fail(e, AG_MCP_INVALID_REQUEST, NULL, 0, msg);
        }

    } else if (json_is_object(root)) {
        n = 1;

    } else {
        json_decref(root);
        return ag_mcp_fail(e, AG_MCP_INVALID_REQUEST, NULL, 0,
                           "not a JSON-RPC message or batch");
    }

    msgs = calloc(n, sizeof(ag_mcp_msg_t));
    if (msgs == NULL) {
        json_decref(root);
        return ag_mcp_fail(e, AG_MCP_INTERNAL_ERROR, NULL, 0, "out of memory");
    }

    for (i = 0; i < n; i++) {
        v = json_is_array(root) ? json_array_get(root, i) : root;

        why = ag_mcp_message(v, &msgs[i]);
        if (why != NULL) {
            ag_mcp_fail(e, AG_MCP_INVALID_REQUEST, msgs[i].id,
                        json_is_array(root) ? i + 1 : 0, why);
            goto failed;
        }

        /* two requests with one id: whose answer would it be? */
        if (msgs[i].kind != AG_MCP_REQUEST) {
            continue;
        }

        for (k = 0; k < i; k++) {
            if (msgs[k].kind == AG_MCP_REQUEST
                && json_equal(msgs[k].id, msgs[i].id))
            {
                snprintf(msg, sizeof(msg), "id already used by message %zu",
                         k + 1);
                ag_mcp_fail(e, AG_MCP_INVALID_REQUEST, msgs[i].id, i + 1, msg);
                goto failed;
            }
        }
    }

    b->root = root;
    b->batch = json_is_array(root);
    b->n = n;
    b->msgs = msgs;

    return 0;

failed:

    free(msgs);
    json_decref(root);

    return -1;
}


void
ag_mcp_body_free(ag_mcp_body_t *b)
{
    json_decref(b->root);
    free(b->msgs);
    memset(b, 0, sizeof(ag_mcp_body_t));
}


void
ag_mcp_call_set(ag_call_t *call, const ag_mcp_msg_t *m)
{
    call->mcp_method = m->method;
    call->mcp_tool = m->tool;
    call->mcp_resource = m->resource;
    call->mcp_prompt = m->prompt;
    call->mcp_args = m->args;
}


int
ag_mcp_session_method(ag_str_t method)
{
    static const char *const  names[] = {
        "initialize", "ping", "tools/list", "resources/list",
        "resources/templates/list", "prompts/list", NULL
    };

    size_t  i;

    for (i = 0; names[i] != NULL; i++) {
        if (ag_mcp_is(method, names[i])) {
            return 1;
        }
    }

    /* "notifications/" alone names no notification */
    return method.len > 14 && memcmp(method.p, "notifications/", 14) == 0;
}


/* --- answers ------------------------------------------------------------- */

static int
ag_mcp_set_str(json_t *obj, const char *key, const char *s)
{
    if (s == NULL) {
        return 0;
    }

    return json_object_set_new(obj, key, json_string(s));
}


/* {"error": CODE, "rule": .., "request_id": .., "approval": ..} */
static json_t *
ag_mcp_meta(const ag_mcp_refusal_t *r)
{
    json_t  *o;

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    if (r->code == NULL
        || ag_mcp_set_str(o, "error", r->code) != 0
        || ag_mcp_set_str(o, "rule", r->rule) != 0
        || ag_mcp_set_str(o, "request_id", r->request_id) != 0
        || ag_mcp_set_str(o, "approval", r->approval) != 0)
    {
        json_decref(o);
        return NULL;
    }

    return o;
}


/* {"jsonrpc": "2.0", "id": ID} */
static json_t *
ag_mcp_envelope(json_t *id)
{
    json_t  *o;

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    if (json_object_set_new(o, "jsonrpc", json_string("2.0")) != 0
        || json_object_set_new(o, "id", id ? json_incref(id) : json_null())
           != 0)
    {
        json_decref(o);
        return NULL;
    }

    return o;
}


/* Each part is attached to its parent as soon as it exists, so that one
   decref of the whole frees everything on any failure (a _new call takes
   its value even when it fails). */
static json_t *
ag_mcp_tool_error(json_t *id, const ag_mcp_refusal_t *r)
{
    json_t  *o, *res, *content, *meta;

    o = ag_mcp_envelope(id);
    if (o == NULL) {
        return NULL;
    }

    res = json_object();
    if (json_object_set_new(o, "result", res) != 0
        || json_object_set_new(res, "isError", json_true()) != 0)
    {
        goto failed;
    }

    content = json_array();
    if (json_object_set_new(res, "content", content) != 0
        || json_array_append_new(content,
               json_pack("{s:s, s:s}", "type", "text", "text", r->message))
           != 0)
    {
        goto failed;
    }

    meta = json_object();
    if (json_object_set_new(res, "_meta", meta) != 0
        || json_object_set_new(meta, "agentgov", ag_mcp_meta(r)) != 0)
    {
        goto failed;
    }

    return o;

failed:

    json_decref(o);

    return NULL;
}


json_t *
ag_mcp_refusal(const ag_mcp_msg_t *m, const ag_mcp_refusal_t *r)
{
    json_t  *data;

    if (m->kind == AG_MCP_REQUEST && ag_mcp_is(m->method, "tools/call")) {
        return ag_mcp_tool_error(m->id, r);
    }

    data = ag_mcp_meta(r);
    if (data == NULL) {
        return NULL;
    }

    return ag_mcp_error(m->id, AG_MCP_REFUSED, r->message, data);
}


json_t *
ag_mcp_error(json_t *id, int code, const char *message, json_t *data)
{
    json_t  *o, *err;

    o = ag_mcp_envelope(id);
    if (o == NULL || message == NULL) {
        goto failed;
    }

    err = json_object();
    if (json_object_set_new(o, "error", err) != 0
        || json_object_set_new(err, "code", json_integer(code)) != 0
        || json_object_set_new(err, "message", json_string(message)) != 0)
    {
        goto failed;
    }

    if (data != NULL && json_object_set_new(err, "data", data) != 0) {
        json_decref(o);
        return NULL;
    }

    return o;

failed:

    json_decref(o);
    json_decref(data);

    return NULL;
}


/* --- digests ------------------------------------------------------------- */

int
ag_mcp_call_digest(const ag_call_t *call, char hex[AG_MCP_DIGEST_HEX])
{
    int             ok;
    char           *args;
    unsigned int    n;
    unsigned char   md[32];
    EVP_MD_CTX     *c;

    /* canonical, so that a retry built by another client library finds its
       grant; absent arguments hash as nothing, unlike "{}" */
    args = NULL;
    if (call->mcp_args != NULL) {
        args = json_dumps(call->mcp_args, AG_MCP_CANON);
        if (args == NULL) {
            return -1;
        }
    }

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        free(args);
        return -1;
    }

    ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1
         && ag_digest_field(c, "agentgov mcp call v1", 20)
         && ag_digest_field(c, call->agent.p, call->agent.len)
         && ag_digest_field(c, call->task.p, call->task.len)
         && ag_digest_field(c, call->tool.p, call->tool.len)
         && ag_digest_field(c, call->mcp_method.p, call->mcp_method.len)
         && ag_digest_field(c, call->mcp_tool.p, call->mcp_tool.len)
         && ag_digest_field(c, call->mcp_resource.p, call->mcp_resource.len)
         && ag_digest_field(c, call->mcp_prompt.p, call->mcp_prompt.len)
         && ag_digest_field(c, args, args ? strlen(args) : 0)
         && EVP_DigestFinal_ex(c, md, &n) == 1;

    EVP_MD_CTX_free(c);
    free(args);

    if (!ok) {
        return -1;
    }

    ag_hex_encode(md, sizeof(md), hex);

    return 0;
}


int
ag_mcp_tool_digest(json_t *tool, char hex[AG_MCP_DIGEST_HEX])
{
    static const char *const  keys[] = { "name", "description", "inputSchema" };

    int             ok;
    char           *text;
    size_t          i;
    json_t         *pin, *v;
    unsigned int    n;
    unsigned char   md[32];

    if (!json_is_object(tool) || !json_is_string(json_object_get(tool, "name")))
    {
        return -1;
    }

    /* only what the model reads: annotations and the rest may change
       without the definition changing */
    pin = json_object();
    if (pin == NULL) {
        return -1;
    }

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        v = json_object_get(tool, keys[i]);
        if (v != NULL && json_object_set(pin, keys[i], v) != 0) {
            json_decref(pin);
            return -1;
        }
    }

    text = json_dumps(pin, AG_MCP_CANON);
    json_decref(pin);
    if (text == NULL) {
        return -1;
    }

    ok = EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) == 1;
    free(text);

    if (!ok) {
        return -1;
    }

    ag_hex_encode(md, sizeof(md), hex);

    return 0;
}


/* --- tools/list results -------------------------------------------------- */

/* The tools array of one message, or NULL. Any object whose result holds a
   tools array is filtered, whatever else it holds: a client might take it
   for a tools/list result. */
static json_t *
ag_mcp_tools_of(json_t *msg)
{
    json_t  *tools;

    tools = json_object_get(json_object_get(msg, "result"), "tools");

    return json_is_array(tools) ? tools : NULL;
}


/* Filter one tools array: 1 if something went, 0 if not, -1 out of memory. */
static int
ag_mcp_filter_tools(json_t *result, json_t *tools, ag_mcp_keep_pt keep,
    void *kd)
{
    char      hex[AG_MCP_DIGEST_HEX + 1];
    size_t    i, k, n;
    json_t   *t, *kept, *name;
    ag_str_t  s;

    n = json_array_size(tools);
    kept = NULL;

    for (i = 0; i < n; i++) {
        t = json_array_get(tools, i);
        name = json_object_get(t, "name");

        if (json_is_string(name) && ag_mcp_tool_digest(t, hex) == 0) {
            hex[AG_MCP_DIGEST_HEX] = '\0';
            s.p = json_string_value(name);
            s.len = json_string_length(name);

            if (keep(kd, s, hex)) {
                if (kept != NULL && json_array_append(kept, t) != 0) {
                    goto failed;
                }
                continue;
            }

        } else if (json_is_object(t) && json_is_string(name)) {
            goto failed;                /* the digest ran out of memory */
        }

        /* the first to go: the ones before it are kept */
        if (kept == NULL) {
            kept = json_array();
            if (kept == NULL) {
                return -1;
            }
            for (k = 0; k < i; k++) {
                if (json_array_append(kept, json_array_get(tools, k)) != 0) {
                    goto failed;
                }
            }
        }
    }

    if (kept == NULL) {
        return 0;
    }

    /* replacing a member keeps its place among the others */
    if (json_object_set_new(result, "tools", kept) != 0) {
        return -1;
    }

    return 1;

failed:

    json_decref(kept);

    return -1;
}


int
ag_mcp_filter_message(const char *data, size_t len, ag_mcp_keep_pt keep,
    void *kd, char **out, size_t *outlen)
{
    int      rc, changed;
    char     err[200];
    size_t   i, n;
    json_t  *root, *msg, *tools;

    *out = NULL;
    *outlen = 0;

    root = ag_json_parse(data, len, err, sizeof(err));
    if (root == NULL) {
        return -1;
    }

    n = json_is_array(root) ? json_array_size(root) : 1;
    changed = 0;

    for (i = 0; i < n; i++) {
        msg = json_is_array(root) ? json_array_get(root, i) : root;

        tools = ag_mcp_tools_of(msg);
        if (tools == NULL) {
            continue;
        }

        rc = ag_mcp_filter_tools(json_object_get(msg, "result"), tools, keep,
                                 kd);
        if (rc < 0) {
            json_decref(root);
            return -1;
        }
        changed |= rc;
    }

    if (!changed) {
        json_decref(root);
        return 0;
    }

    /* the server's key order is kept: only the list changed */
    *out = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(root);

    if (*out == NULL) {
        return -1;
    }

    *outlen = strlen(*out);

    return 1;
}


/* --- server-sent events -------------------------------------------------- */

/* The end of the line at p (its length without the line end) and the
   length of its line end, 0 when the data ends inside the line. A "\r" at
   the very end counts as a line end: a "\n" that may follow it later is then
   an empty line of its own, and the bytes pass unchanged either way. */
static size_t
ag_sse_line(const char *p, size_t len, size_t *eol)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] == '\n') {
            *eol = 1;
            return i;
        }
        if (p[i] == '\r') {
            *eol = (i + 1 < len && p[i + 1] == '\n') ? 2 : 1;
            return i;
        }
    }

    *eol = 0;

    return len;
}


size_t
ag_sse_event_len(const char *data, size_t len)
{
    size_t  off, n, eol;

    off = 0;

    while (off < len) {
        n = ag_sse_line(data + off, len - off, &eol);
        if (eol == 0) {
            return 0;
        }

        off += n + eol;

        if (n == 0) {
            return off;
        }
    }

    return 0;
}


/* The value of a "data" field line, or -1 when the line is another field. */
static int
ag_sse_data(const char *p, size_t n, const char **v, size_t *vlen)
{
    if (n < 4 || memcmp(p, "data", 4) != 0) {
        return -1;
    }

    if (n == 4) {
        *v = p + 4;
        *vlen = 0;
        return 0;
    }

    if (p[4] != ':') {
        return -1;                      /* "datum", "data2": other fields */
    }

    p += 5;
    n -= 5;

    if (n > 0 && p[0] == ' ') {
        p++;
        n--;
    }

    *v = p;
    *vlen = n;

    return 0;
}


typedef struct {
    const char  *data;
    size_t       len;
    size_t       off;
} ag_sse_iter_t;


/* The next line of an event: 1 with the line (without its line end), 0 at
   the blank line that ends the event or at the end of the data. */
static int
ag_sse_next(ag_sse_iter_t *it, const char **p, size_t *n)
{
    size_t  eol;

    if (it->off >= it->len) {
        return 0;
    }

    *p = it->data + it->off;
    *n = ag_sse_line(*p, it->len - it->off, &eol);
    it->off += *n + eol;

    return *n > 0;
}


int
ag_mcp_filter_event(const char *data, size_t len, ag_mcp_keep_pt keep,
    void *kd, char **out, size_t *outlen)
{
    int             rc, first;
    char           *joined, *msg, *o;
    size_t          n, vlen, ndata, jlen, msglen, size, bom;
    const char     *p, *v, *one;
    ag_sse_iter_t   it;

    *out = NULL;
    *outlen = 0;

    /* a BOM opens the stream and is no part of the first field's name: an
       event that starts with one keeps it in front */
    bom = (len >= AG_SSE_BOM_LEN
           && memcmp(data, AG_SSE_BOM, AG_SSE_BOM_LEN) == 0)
          ? AG_SSE_BOM_LEN : 0;

    /* first pass: how much data, and how long the rest of the event is */
    ndata = 0;
    jlen = 0;
    size = bom + 1;
    one = NULL;

    it.data = data;
    it.len = len;
    it.off = bom;

    while (ag_sse_next(&it, &p, &n)) {
        if (ag_sse_data(p, n, &v, &vlen) == 0) {
            jlen += (ndata > 0 ? 1 : 0) + vlen;
            one = v;
            ndata++;

        } else {
            size += n + 1;
        }
    }

    if (it.off < len) {
        return -1;                      /* more than one event */
    }

    /* no data, or empty data: the client dispatches nothing */
    if (jlen == 0) {
        return 0;
    }

    /* data lines are joined with "\n", as the client joins them */
    joined = NULL;
    if (ndata > 1) {
        joined = malloc(jlen + 1);
        if (joined == NULL) {
            return -1;
        }

        jlen = 0;
        it.off = bom;

        while (ag_sse_next(&it, &p, &n)) {
            if (ag_sse_data(p, n, &v, &vlen) == 0) {
                memcpy(joined + jlen, v, vlen);
                jlen += vlen;
                joined[jlen++] = '\n';
            }
        }

        jlen--;
        one = joined;
    }

    rc = ag_mcp_filter_message(one, jlen, keep, kd, &msg, &msglen);
    free(joined);

    if (rc != 1) {
        return rc;
    }

    /* the other fields as they were, the data as one line where it began */
    size += 6 + msglen + 1;

    o = malloc(size);
    if (o == NULL) {
        free(msg);
        return -1;
    }

    memcpy(o, data, bom);
    size = bom;
    first = 1;
    it.off = bom;

    while (ag_sse_next(&it, &p, &n)) {
        if (ag_sse_data(p, n, &v, &vlen) != 0) {
            memcpy(o + size, p, n);
            size += n;
            o[size++] = '\n';

        } else if (first) {
            memcpy(o + size, "data: ", 6);
            memcpy(o + size + 6, msg, msglen);
            size += 6 + msglen;
            o[size++] = '\n';
            first = 0;
        }
    }

    o[size++] = '\n';
    free(msg);

    *out = o;
    *outlen = size;

    return 1;
}
