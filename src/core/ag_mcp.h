/*
 * MCP (SPEC sections 2, 5, 6 and 9): the JSON-RPC 2.0 messages an agent posts
 * to a "protocol": "mcp" tool, the answers the gateway gives in their place
 * when it refuses them, and the tools/list results it filters on their way
 * back. No nginx here: the glue hands over bytes and gets bytes back.
 */

#ifndef AG_MCP_H
#define AG_MCP_H

#include <stddef.h>
#include <jansson.h>

#include "ag_call.h"


#define AG_MCP_ID_MAX          256    /* bytes of a string id */
#define AG_MCP_NAME_MAX        1024   /* bytes of a method, tool, prompt name
                                         or resource URI */
#define AG_MCP_BATCH_MAX       100    /* messages in one batch */
#define AG_MCP_DIGEST_HEX      64

/* JSON-RPC error codes the gateway answers with */
#define AG_MCP_PARSE_ERROR     (-32700)
#define AG_MCP_INVALID_REQUEST (-32600)
#define AG_MCP_REFUSED         (-32001)
#define AG_MCP_INTERNAL_ERROR  (-32603)


typedef enum {
    AG_MCP_REQUEST = 0,        /* method and id */
    AG_MCP_NOTIFICATION,       /* method, no id */
    AG_MCP_RESPONSE            /* id and result or error: the client's answer
                                  to a request of the server's */
} ag_mcp_kind_t;

/* One message of a body. Everything is borrowed from ag_mcp_body_t.root. */
typedef struct {
    ag_mcp_kind_t  kind;
    json_t        *id;         /* string or integer; NULL for a notification */
    ag_str_t       method;     /* empty for a response */
    ag_str_t       tool;       /* tools/call params.name */
    ag_str_t       resource;   /* resources/read params.uri */
    ag_str_t       prompt;     /* prompts/get params.name */
    json_t        *args;       /* tools/call params.arguments, or NULL */
} ag_mcp_msg_t;

typedef struct {
    json_t        *root;       /* owned */
    int            batch;      /* the body was an array */
    size_t         n;
    ag_mcp_msg_t  *msgs;       /* owned, n entries */
} ag_mcp_body_t;

/* Why a body was refused: -32700 or -32600, the id of the offending message
   when it could be read (a new reference, or NULL), and a message in
   printable ASCII that names the batch member ("message 3: ..."). */
typedef struct {
    int            code;
    json_t        *id;
    char           message[256];
} ag_mcp_error_t;


/*
 * Parse a POST body as JSON-RPC 2.0: one message or a batch (a non-empty
 * array of at most AG_MCP_BATCH_MAX). The bytes go through ag_json_parse
 * (duplicate keys, depth, UTF-8, numbers): failure is -32700. Then each
 * member must be an object with "jsonrpc": "2.0"; an id, when present, a
 * string of at most AG_MCP_ID_MAX bytes or an integer (null, reals, booleans
 * and containers are refused); a request or notification a non-empty string
 * "method", no "result" or "error", and "params", when present, an object
 * or an array; a response an id and exactly one of "result" and "error".
 * tools/call needs params.name and params.arguments, when present, an
 * object; resources/read params.uri and prompts/get params.name. Methods,
 * names and URIs are non-empty strings of at most AG_MCP_NAME_MAX bytes.
 * Two requests of a batch with equal ids are refused. Anything else is
 * -32600 (and running out of memory -32603).
 *
 * Returns 0 with *b filled (free with ag_mcp_body_free), or -1 with *e
 * filled (free e->id with json_decref).
 */
int ag_mcp_parse(const char *data, size_t len, ag_mcp_body_t *b,
    ag_mcp_error_t *e);

void ag_mcp_body_free(ag_mcp_body_t *b);

/* Point the call's mcp_* fields at a message's (borrowed). */
void ag_mcp_call_set(ag_call_t *call, const ag_mcp_msg_t *m);

/*
 * Whether a method is one a session needs to start and look around
 * (SPEC section 2): initialize, ping, notifications/..., tools/list,
 * resources/list, resources/templates/list and prompts/list. These are
 * allowed for an agent whose task includes the tool unless a deny rule
 * matches them.
 */
int ag_mcp_session_method(ag_str_t method);


/* --- answers in place of refused messages (SPEC section 9) --------------- */

typedef struct {
    const char    *code;       /* the gateway's error code, e.g. "denied" */
    const char    *message;    /* what the model reads */
    const char    *rule;       /* may be NULL */
    const char    *request_id; /* may be NULL */
    const char    *approval;   /* an approval id, or NULL */
} ag_mcp_refusal_t;

/*
 * The answer to a refused request: for tools/call a tool error result
 *   {"jsonrpc":"2.0","id":ID,"result":{"isError":true,
 *    "content":[{"type":"text","text":MESSAGE}],
 *    "_meta":{"agentgov":{"error":CODE,"rule":..,"request_id":..,
 *    "approval":..}}}}
 * and for any other method a JSON-RPC error
 *   {"jsonrpc":"2.0","id":ID,"error":{"code":-32001,"message":MESSAGE,
 *    "data":{"error":CODE,"rule":..,"request_id":..,"approval":..}}}
 * (members that are NULL are left out; the id is null for a notification).
 * NULL when out of memory, or when a string is NULL or not UTF-8.
 */
json_t *ag_mcp_refusal(const ag_mcp_msg_t *m, const ag_mcp_refusal_t *r);

/* {"jsonrpc":"2.0","id":ID (null when NULL),"error":{"code":..,"message":..,
   "data":DATA}}; data is stolen and may be NULL. NULL when out of memory. */
json_t *ag_mcp_error(json_t *id, int code, const char *message, json_t *data);

/*
 * The digest an MCP grant is found by (SPEC section 6): SHA-256 over the
 * call's agent, task, tool, mcp_method, mcp_tool, mcp_resource, mcp_prompt
 * (each with its length) and the canonical form of its arguments (compact,
 * keys sorted; nothing when absent), in hex. A retry of the same call with
 * another JSON-RPC id, other whitespace or another key order has the same
 * digest; any other difference changes it.
 */
int ag_mcp_call_digest(const ag_call_t *call, char hex[AG_MCP_DIGEST_HEX]);


/* --- tools/list results on the way back ---------------------------------- */

/*
 * The pin of a tool definition (SPEC section 5): SHA-256 in hex of the
 * canonical form (compact, keys sorted at every level) of an object holding
 * the definition's "name", "description" and "inputSchema" (those present).
 * -1 if the definition is not an object with a string name.
 */
int ag_mcp_tool_digest(json_t *tool, char hex[AG_MCP_DIGEST_HEX]);

/* Whether a listed tool stays in the list: called once per definition, with
   its name and pin (64 hex digits, NUL-terminated here). Non-zero keeps
   it. */
typedef int (*ag_mcp_keep_pt)(void *data, ag_str_t name, const char *hex);

/*
 * Filter one JSON text holding a JSON-RPC message or a batch of them: from
 * every response whose "result" has a "tools" array, the definitions keep()
 * refuses are removed (and so is every entry that is not an object with a
 * string name). Returns 0 when nothing changed (*out NULL), 1 when it did
 * (*out a malloc'd text, compact, keys in their order, *outlen its length),
 * -1 when the text is not JSON that ag_json_parse accepts or memory ran out
 * (the caller fails closed).
 */
int ag_mcp_filter_message(const char *data, size_t len, ag_mcp_keep_pt keep,
    void *kd, char **out, size_t *outlen);

/*
 * Server-sent events (text/event-stream). ag_sse_event_len: the length of
 * the first complete event at data, through the blank line that ends it
 * ("\n\n", "\r\n\r\n", "\r\r" or mixed line ends), or 0 when the event is
 * not complete yet.
 *
 * A "\r" at the very end of data ends a line: a "\n" arriving after it is
 * then an empty event of its own, and the bytes pass unchanged either way.
 *
 * ag_mcp_filter_event: filter one complete event (its blank line may be
 * missing at the end of a stream). Its data lines ("data:" and one space
 * after it stripped, or "data" alone), joined with "\n", are the message;
 * fields other than data (id, event, retry, comments) are kept in order,
 * the data becomes one "data: " line where the first data line was, and
 * every line ends with "\n" (a leading BOM is kept). Same returns as
 * ag_mcp_filter_message; an event without data, or with empty data, is
 * unchanged; bytes after the event's blank line are -1.
 */
size_t ag_sse_event_len(const char *data, size_t len);

int ag_mcp_filter_event(const char *data, size_t len, ag_mcp_keep_pt keep,
    void *kd, char **out, size_t *outlen);

#endif /* AG_MCP_H */
