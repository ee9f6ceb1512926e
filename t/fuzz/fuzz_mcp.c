/*
 * ag_mcp_parse on raw POST bodies, then for every message the answer the
 * gateway would give in its place and the digest its grant is found by.
 *
 * Oracles:
 *
 * - a refusal is -32700 exactly when ag_json_parse refuses the bytes (and
 *   then has no id), else -32600; its message is printable ASCII and not
 *   empty; its id, when there is one, is a valid id; the error answer
 *   built from it encodes to JSON that ag_json_parse accepts;
 * - an accepted body: one message or a batch of 1 to 100; each message's
 *   kind agrees with its id and method; ids are strings of at most 256
 *   bytes or integers; every name the parser gives out is the string in
 *   the message it came from, non-empty and at most 1024 bytes;
 *   tools/call has a tool name and arguments that are absent or an
 *   object; no two requests share an id;
 * - the refusal of every message encodes to valid JSON of the shape of
 *   SPEC section 9 (a tool error result for tools/call, -32001 otherwise)
 *   and answers the message's id;
 * - the body re-encoded with other whitespace and key order parses again
 *   to the same messages with the same call digests (a retry finds its
 *   grant), and a call with one more byte in its agent has another digest.
 */

#include "fuzz.h"
#include "ag_json.h"
#include "ag_mcp.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


static int
ag_fz_id_ok(json_t *id)
{
    return json_is_integer(id)
           || (json_is_string(id) && json_string_length(id) <= AG_MCP_ID_MAX);
}


/* A name the parser gave out is the string at params.<key> (or the
   method), byte for byte. */
static void
ag_fz_name(ag_str_t s, json_t *v)
{
    ag_fuzz_assert(json_is_string(v));
    ag_fuzz_assert(s.p == json_string_value(v));
    ag_fuzz_assert(s.len == json_string_length(v));
    ag_fuzz_assert(s.len > 0 && s.len <= AG_MCP_NAME_MAX);
}


static int
ag_fz_is(ag_str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}


static int
ag_fz_is_2(json_t *v)
{
    return json_is_string(v) && json_string_length(v) == 3
           && memcmp(json_string_value(v), "2.0", 3) == 0;
}


static void
ag_fz_message(json_t *v, const ag_mcp_msg_t *m)
{
    json_t  *params;

    ag_fuzz_assert(json_is_object(v));
    ag_fuzz_assert(json_object_get(v, "id") == m->id);
    ag_fuzz_assert(m->id == NULL || ag_fz_id_ok(m->id));
    ag_fuzz_assert(ag_fz_is_2(json_object_get(v, "jsonrpc")));

    switch (m->kind) {
    case AG_MCP_REQUEST:
    case AG_MCP_NOTIFICATION:
        ag_fuzz_assert((m->kind == AG_MCP_REQUEST) == (m->id != NULL));
        ag_fz_name(m->method, json_object_get(v, "method"));
        ag_fuzz_assert(json_object_get(v, "result") == NULL);
        ag_fuzz_assert(json_object_get(v, "error") == NULL);
        break;

    case AG_MCP_RESPONSE:
        ag_fuzz_assert(m->id != NULL && m->method.len == 0);
        ag_fuzz_assert(json_object_get(v, "method") == NULL);
        ag_fuzz_assert((json_object_get(v, "result") == NULL)
                       != (json_object_get(v, "error") == NULL));
        break;

    default:
        ag_fuzz_fail("kind %d", (int) m->kind);
    }

    params = json_object_get(v, "params");

    if (ag_fz_is(m->method, "tools/call")) {
        ag_fz_name(m->tool, json_object_get(params, "name"));
        ag_fuzz_assert(m->args == json_object_get(params, "arguments"));
        ag_fuzz_assert(m->args == NULL || json_is_object(m->args));
    } else {
        ag_fuzz_assert(m->tool.len == 0 && m->args == NULL);
    }

    if (ag_fz_is(m->method, "resources/read")) {
        ag_fz_name(m->resource, json_object_get(params, "uri"));
    } else {
        ag_fuzz_assert(m->resource.len == 0);
    }

    if (ag_fz_is(m->method, "prompts/get")) {
        ag_fz_name(m->prompt, json_object_get(params, "name"));
    } else {
        ag_fuzz_assert(m->prompt.len == 0);
    }
}


/* Encode an answer and read it back as the client would. */
static json_t *
ag_fz_reread(json_t *v)
{
    char     err[256], *text;
    json_t  *back;

    ag_fuzz_assert(v != NULL);
    text = json_dumps(v, JSON_COMPACT);
    ag_fuzz_assert(text != NULL);
    back = ag_json_parse(text, strlen(text), err, sizeof(err));
    if (back == NULL) {
        ag_fuzz_fail("answer is not valid JSON: %s: %s", err, text);
    }
    free(text);
    ag_fuzz_assert(json_equal(v, back));
    json_decref(back);
    return v;
}


static void
ag_fz_refusal(const ag_mcp_msg_t *m, int pending)
{
    json_t            *v, *id, *res, *meta, *err;
    ag_mcp_refusal_t   r;

    memset(&r, 0, sizeof(r));
    r.code = pending ? "approval_pending" : "denied";
    r.message = "refused by \"policy\" \xe2\x80\x94 try another way";
    r.rule = pending ? "hold-rule" : NULL;
    r.request_id = "req-1";
    r.approval = pending ? "ap-1" : NULL;

    v = ag_fz_reread(ag_mcp_refusal(m, &r));

    ag_fuzz_assert(ag_fz_is_2(json_object_get(v, "jsonrpc")));
    id = json_object_get(v, "id");
    ag_fuzz_assert(m->id ? json_equal(id, m->id) : json_is_null(id));

    if (m->kind == AG_MCP_REQUEST && ag_fz_is(m->method, "tools/call")) {
        res = json_object_get(v, "result");
        ag_fuzz_assert(json_is_true(json_object_get(res, "isError")));
        ag_fuzz_assert(json_array_size(json_object_get(res, "content")) == 1);
        meta = json_object_get(json_object_get(res, "_meta"), "agentgov");
        ag_fuzz_assert(json_object_get(v, "error") == NULL);
    } else {
        err = json_object_get(v, "error");
        ag_fuzz_assert(json_integer_value(json_object_get(err, "code"))
                       == AG_MCP_REFUSED);
        meta = json_object_get(err, "data");
        ag_fuzz_assert(json_object_get(v, "result") == NULL);
    }

    ag_fuzz_assert(strcmp(json_string_value(json_object_get(meta, "error")),
                          r.code) == 0);
    ag_fuzz_assert(json_object_size(meta) == (pending ? 4u : 2u));

    json_decref(v);
}


static void
ag_fz_digest(const ag_mcp_msg_t *m, const char *agent,
    char hex[AG_MCP_DIGEST_HEX])
{
    size_t     i;
    ag_call_t  c;

    memset(&c, 0, sizeof(c));
    c.agent.p = agent;
    c.agent.len = strlen(agent);
    c.task = (ag_str_t) ag_str_lit("task-1");
    c.tool = (ag_str_t) ag_str_lit("files");
    c.method = (ag_str_t) ag_str_lit("POST");
    ag_mcp_call_set(&c, m);

    ag_fuzz_assert(ag_mcp_call_digest(&c, hex) == 0);
    for (i = 0; i < AG_MCP_DIGEST_HEX; i++) {
        ag_fuzz_assert(strchr("0123456789abcdef", hex[i]) != NULL
                       && hex[i] != '\0');
    }
}


/* Re-encoded with other whitespace and every object's keys sorted: the
   same messages, the same digests. */
static void
ag_fz_again(const ag_mcp_body_t *b)
{
    char             *text, h1[AG_MCP_DIGEST_HEX], h2[AG_MCP_DIGEST_HEX];
    size_t            i;
    ag_mcp_body_t     b2;
    ag_mcp_error_t    e;

    text = json_dumps(b->root, JSON_INDENT(1) | JSON_SORT_KEYS);
    ag_fuzz_assert(text != NULL);

    if (ag_mcp_parse(text, strlen(text), &b2, &e) != 0) {
        ag_fuzz_fail("re-encoded body refused: %d %s: %s", e.code, e.message,
                     text);
    }
    free(text);

    ag_fuzz_assert(b2.n == b->n && b2.batch == b->batch);

    for (i = 0; i < b->n; i++) {
        ag_fuzz_assert(b2.msgs[i].kind == b->msgs[i].kind);
        ag_fuzz_assert(b->msgs[i].id == NULL
                       ? b2.msgs[i].id == NULL
                       : json_equal(b->msgs[i].id, b2.msgs[i].id));

        ag_fz_digest(&b->msgs[i], "agent", h1);
        ag_fz_digest(&b2.msgs[i], "agent", h2);
        ag_fuzz_assert(memcmp(h1, h2, sizeof(h1)) == 0);

        ag_fz_digest(&b2.msgs[i], "agent2", h2);
        ag_fuzz_assert(memcmp(h1, h2, sizeof(h1)) != 0);
    }

    ag_mcp_body_free(&b2);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc;
    char             err[256];
    size_t           i, k;
    json_t          *root, *v;
    ag_mcp_body_t    b;
    ag_mcp_error_t   e;

    rc = ag_mcp_parse((const char *) data, size, &b, &e);

    root = ag_json_parse((const char *) data, size, err, sizeof(err));

    if (rc != 0) {
        if (ag_fuzz_debug()) {
            fprintf(stderr, "refused: %d %s\n", e.code, e.message);
        }
        ag_fuzz_assert(b.root == NULL && b.msgs == NULL && b.n == 0);
        ag_fuzz_assert(e.message[0] != '\0');
        for (i = 0; e.message[i] != '\0'; i++) {
            ag_fuzz_assert(e.message[i] >= 0x20 && e.message[i] <= 0x7e);
        }
        ag_fuzz_assert(e.code == (root == NULL ? AG_MCP_PARSE_ERROR
                                               : AG_MCP_INVALID_REQUEST));
        ag_fuzz_assert(e.code == AG_MCP_INVALID_REQUEST || e.id == NULL);
        ag_fuzz_assert(e.id == NULL || ag_fz_id_ok(e.id));

        v = ag_fz_reread(ag_mcp_error(e.id, e.code, e.message,
                                      json_pack("{s:s}", "error",
                                                "bad_request")));
        json_decref(v);
        json_decref(e.id);
        json_decref(root);
        return 0;
    }

    ag_fuzz_assert(root != NULL);
    ag_fuzz_assert(json_equal(root, b.root));
    json_decref(root);

    ag_fuzz_assert(b.n >= 1 && b.n <= AG_MCP_BATCH_MAX);
    ag_fuzz_assert(b.batch == json_is_array(b.root));
    ag_fuzz_assert(b.batch ? json_array_size(b.root) == b.n : b.n == 1);

    for (i = 0; i < b.n; i++) {
        v = b.batch ? json_array_get(b.root, i) : b.root;
        ag_fz_message(v, &b.msgs[i]);

        if (b.msgs[i].kind == AG_MCP_REQUEST) {
            for (k = 0; k < i; k++) {
                ag_fuzz_assert(b.msgs[k].kind != AG_MCP_REQUEST
                               || !json_equal(b.msgs[k].id, b.msgs[i].id));
            }
        }

        ag_fz_refusal(&b.msgs[i], 0);
        ag_fz_refusal(&b.msgs[i], 1);
    }

    if (ag_fuzz_debug()) {
        fprintf(stderr, "accepted: %zu message(s)%s\n", b.n,
                b.batch ? " in a batch" : "");
    }

    ag_fz_again(&b);
    ag_mcp_body_free(&b);

    return 0;
}
