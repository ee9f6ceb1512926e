/*
 * ag_call_t: the normalised tool call that every part of the engine reads.
 *
 * Built once per request by the nginx glue (or from a CALL.json by the CLI and
 * the tests) and passed by pointer to the engine. Strings are (pointer, length)
 * pairs and are never assumed to be NUL-terminated; the struct borrows them and
 * owns nothing.
 */

#ifndef AG_CALL_H
#define AG_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct {
    const char  *p;
    size_t       len;
} ag_str_t;

#define ag_str_lit(s)   { (s), sizeof(s) - 1 }
#define ag_str_null     { NULL, 0 }

typedef struct {
    ag_str_t     name;          /* as sent; matched case-insensitively */
    ag_str_t     value;
} ag_header_t;

typedef struct {
    ag_str_t     agent;         /* policy agent name; empty when unknown */
    ag_str_t     owner;
    ag_str_t     task;          /* task id; empty when the call has no task */
    ag_str_t     intent;
    ag_str_t     chain;         /* delegation chain "root>child", empty at depth 0 */
    int          depth;         /* 0 for a task declared directly */

    ag_str_t     tool;          /* policy tool name */
    ag_str_t     method;        /* upper case, as on the request line */
    ag_str_t     host;          /* lower case, without port */
    ag_str_t     path;          /* normalised, relative to the location, no query */

    const ag_header_t *headers; /* request headers, in arrival order */
    size_t       nheaders;
    ag_str_t     query;         /* raw query string, without '?', still encoded */

    json_t      *body;          /* parsed JSON body (borrowed); NULL when none */

    ag_str_t     mcp_method;    /* JSON-RPC method of an MCP message */
    ag_str_t     mcp_tool;      /* tools/call params.name */
    ag_str_t     mcp_resource;  /* resources/read params.uri */
    ag_str_t     mcp_prompt;    /* prompts/get params.name */
    json_t      *mcp_args;      /* tools/call params.arguments (borrowed) */

    int64_t      now;           /* Unix time in seconds, UTC */
} ag_call_t;


/*
 * A call described as JSON, as `agentgov policy eval` and the test cases read it:
 *
 *   {"agent": "support-bot", "intent": "triage-ticket", "tool": "tickets",
 *    "method": "GET", "path": "/v1/tickets/7", "host": "tickets.internal",
 *    "headers": {"X-Priority": "high"}, "query": "a=1&b=2", "body": {...},
 *    "mcp": {"method": "tools/call", "tool": "read_file", "arguments": {...}},
 *    "chain": "a>b", "depth": 1, "time": "2026-11-23T10:00:00Z"}
 *
 * owner is taken from the JSON when present (the caller may fill it from the
 * policy's agents). Strings point into `obj`, which must outlive the call;
 * headers are allocated into `hdrs` (up to `nhdrs_max`). Returns 0, or -1 with
 * `err` filled.
 */
int ag_call_from_json(json_t *obj, ag_call_t *call, ag_header_t *hdrs,
    size_t nhdrs_max, char *err, size_t errlen);

#endif /* AG_CALL_H */
