/*
 * MCP calls (SPEC sections 2, 5, 6 and 9): a "protocol": "mcp" tool is
 * decided per JSON-RPC message, not per URL. A POST's body is parsed as one
 * message or a batch; each request is evaluated with its method, tool,
 * resource or prompt and arguments; a batch passes only if every member
 * does. Refusals after identity and task are JSON-RPC answers in HTTP 200,
 * so that the client hands them to the model. An Mcp-Session-Id is bound to
 * the agent and task that started the session (ngx_http_agentgov_filter.c
 * binds it when the tool answers initialize), and tools whose definition
 * changed since it was pinned are refused with tool_changed.
 */

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_audit.h"


static ngx_int_t ngx_http_agentgov_mcp_session(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_refusal_t *ref);
static ngx_uint_t ngx_http_agentgov_mcp_rank(ag_effect_t e);
static u_char *ngx_http_agentgov_mcp_cstr(ngx_http_request_t *r, u_char *p,
    size_t len);
static void ngx_http_agentgov_mcp_cleanup(void *data);


/*
 * A POST's body as JSON-RPC. Malformed: NGX_DECLINED with a 400 refusal,
 * answered as the JSON-RPC error of SPEC section 9 (-32700 or -32600).
 */

ngx_int_t
ngx_http_agentgov_mcp_parse(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_str_t *body, ngx_http_agentgov_refusal_t *ref)
{
    size_t               i;
    ag_mcp_body_t       *b;
    ngx_pool_cleanup_t  *cln;

    b = ngx_pcalloc(r->pool, sizeof(ag_mcp_body_t));
    ctx->mcp_error = ngx_pcalloc(r->pool, sizeof(ag_mcp_error_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (b == NULL || ctx->mcp_error == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_agentgov_mcp_cleanup;
    cln->data = ctx;

    if (ag_mcp_parse((const char *) body->data, body->len, b, ctx->mcp_error)
        != 0)
    {
        ngx_http_agentgov_refusal(ref, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  ctx->mcp_error->message);
        return NGX_DECLINED;
    }

    ctx->mcp_error = NULL;
    ctx->mcp = b;

    /* a refusal before the rules (secrets) is every member's */
    ctx->mcp_refused = -1;

    /* body: conditions read the JSON-RPC envelope */
    ctx->body = b->root;

    for (i = 0; i < b->n; i++) {
        if (b->msgs[i].kind == AG_MCP_REQUEST
            && b->msgs[i].method.len == sizeof("tools/list") - 1
            && ngx_strncmp(b->msgs[i].method.p, "tools/list",
                           sizeof("tools/list") - 1) == 0)
        {
            ctx->mcp_list = 1;
        }
    }

    return NGX_OK;
}


static void
ngx_http_agentgov_mcp_cleanup(void *data)
{
    ngx_http_agentgov_ctx_t *ctx = data;

    if (ctx->mcp) {
        ag_mcp_body_free(ctx->mcp);
        ctx->mcp = NULL;
        ctx->body = NULL;
    }

    if (ctx->mcp_error && ctx->mcp_error->id) {
        json_decref(ctx->mcp_error->id);
        ctx->mcp_error->id = NULL;
    }
}


/*
 * The decision for an MCP call, into ctx->decision: the strongest of its
 * messages' (deny, then hold, then allow), the call's mcp_* fields set to
 * the deciding message's for the record. NGX_DECLINED with ref for a
 * refusal that is not a rule's (session, tool_changed, a held batch).
 */

ngx_int_t
ngx_http_agentgov_mcp_eval(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    size_t                          i, which;
    ngx_int_t                       rc;
    ag_str_t                        tool;
    ag_decision_t                   d;
    ag_mcp_msg_t                   *m;
    ngx_http_agentgov_store_t      *s;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);

    ctx->mcp_refused = -1;

    rc = ngx_http_agentgov_mcp_session(r, ctx, s, ref);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ctx->mcp == NULL) {
        /*
         * No messages: GET opens the server's stream, DELETE ends the
         * session. Rules may refuse them; the default does not, or a
         * session could not work.
         */
        if (ag_policy_eval(amcf->policy, &ctx->call, &ctx->decision, NULL,
                           NULL)
            != 0)
        {
            return NGX_ERROR;
        }

        if (ctx->decision.effect == AG_DENY && ctx->decision.rule == NULL
            && (r->method & (NGX_HTTP_GET|NGX_HTTP_DELETE)))
        {
            ctx->decision.effect = AG_ALLOW;
            ctx->decision.reason = "the session's own stream";
        }

        return NGX_OK;
    }

    tool.p = ctx->tool->name;
    tool.len = ngx_strlen(ctx->tool->name);

    ngx_memzero(&ctx->decision, sizeof(ag_decision_t));
    which = ctx->mcp->n;

    for (i = 0; i < ctx->mcp->n; i++) {
        m = &ctx->mcp->msgs[i];

        if (m->kind == AG_MCP_RESPONSE) {
            /* the client answering the server (sampling, elicitation) */
            continue;
        }

        ag_mcp_call_set(&ctx->call, m);

        if (m->tool.len && s
            && ngx_http_agentgov_store_pin_changed(s, tool, m->tool)
               == NGX_AGENTGOV_STORE_OK)
        {
            ctx->mcp_refused = (ngx_int_t) i;
            ngx_memzero(&ctx->decision, sizeof(ag_decision_t));
            ctx->decision.effect = AG_DENY;
            ctx->decision.reason = "";

            return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                             "tool_changed", "the tool's "
                                             "definition changed since it "
                                             "was reviewed; an admin must "
                                             "accept it first");
        }

        if (ag_policy_eval(amcf->policy, &ctx->call, &d, NULL, NULL) != 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "agentgov: policy evaluation failed, call denied");
        }

        if (d.effect == AG_DENY && d.rule == NULL
            && ag_mcp_session_method(m->method))
        {
            d.effect = AG_ALLOW;
            d.reason = "a session method";
        }

        if (which == ctx->mcp->n
            || ngx_http_agentgov_mcp_rank(d.effect)
               > ngx_http_agentgov_mcp_rank(ctx->decision.effect))
        {
            ctx->decision = d;
            which = i;
        }
    }

    if (which == ctx->mcp->n) {
        /* only answers to the server */
        ctx->decision.effect = AG_ALLOW;
        ctx->decision.reason = "answers to the server";
        ag_mcp_call_set(&ctx->call, &ctx->mcp->msgs[0]);
        return NGX_OK;
    }

    ag_mcp_call_set(&ctx->call, &ctx->mcp->msgs[which]);

    if (ctx->decision.effect != AG_ALLOW) {
        ctx->mcp_refused = (ngx_int_t) which;
    }

    if (ctx->decision.effect == AG_HOLD && ctx->mcp->batch) {
        ctx->decision.effect = AG_DENY;

        return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN, "denied",
                                         "a call that needs approval cannot "
                                         "be part of a batch: send it "
                                         "alone");
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_agentgov_mcp_rank(ag_effect_t e)
{
    return e == AG_DENY ? 3 : e == AG_HOLD ? 2 : e == AG_ALLOW ? 1 : 0;
}


/*
 * Mcp-Session-Id: only the agent and task that started a session may use
 * it. One the gateway does not know answers 404, as MCP servers do for an
 * unknown session, so that the client starts a new one.
 */

static ngx_int_t
ngx_http_agentgov_mcp_session(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_store_t *s,
    ngx_http_agentgov_refusal_t *ref)
{
    ag_str_t                      sid;
    ngx_uint_t                    n;
    ngx_table_elt_t              *h;
    ngx_http_agentgov_store_rc_e  rc;

    h = ngx_http_agentgov_find_header(r, "Mcp-Session-Id",
                                      sizeof("Mcp-Session-Id") - 1, &n);
    if (h == NULL) {
        return NGX_OK;
    }

    ctx->mcp_http = 1;

    if (n > 1 || h->value.len == 0
        || h->value.len > NGX_HTTP_AGENTGOV_SESSION_MAX)
    {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_BAD_REQUEST,
                                         "bad_request", "one Mcp-Session-Id "
                                         "of at most 256 bytes");
    }

    if (s == NULL) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "MCP sessions need "
                                         "agentgov_zone");
    }

    sid.p = (const char *) h->value.data;
    sid.len = h->value.len;

    rc = ngx_http_agentgov_store_session_check(s, sid, ctx->call.agent,
                                               ctx->call.task, ngx_time());

    if (rc == NGX_AGENTGOV_STORE_NOT_FOUND) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_NOT_FOUND, "denied",
                                         "unknown MCP session: start a new "
                                         "one with initialize");
    }

    if (rc != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN, "denied",
                                         "the MCP session was started by "
                                         "another agent or task");
    }

    ctx->mcp_http = 0;

    return NGX_OK;
}


/* The HTTP status a refusal is answered with (mcp_refuse's choice). */

ngx_uint_t
ngx_http_agentgov_mcp_status(ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    size_t  i;

    if (ctx->mcp_error && !ctx->mcp_http) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ctx->mcp == NULL || ctx->mcp_http
        || ref->status == NGX_HTTP_UNAUTHORIZED)
    {
        return ref->status;
    }

    for (i = 0; i < ctx->mcp->n; i++) {
        if (ctx->mcp->msgs[i].kind == AG_MCP_REQUEST) {
            return NGX_HTTP_OK;
        }
    }

    return ref->status;
}


/*
 * The JSON-RPC answer in place of refused messages (SPEC section 9): HTTP
 * 200 with one answer per request of the body, or, for a malformed body,
 * HTTP 400 with its -32700 or -32600 error. NGX_DECLINED when the refusal
 * is HTTP's to give (no request to answer, an identity or task failure, a
 * session refusal).
 */

ngx_int_t
ngx_http_agentgov_mcp_refuse(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    char              *text;
    size_t             i, requests;
    json_t            *out, *one, *data;
    ngx_int_t          rc;
    ngx_str_t          type = ngx_string("application/json");
    ngx_uint_t         status;
    ag_mcp_msg_t      *m;
    ngx_table_elt_t   *h;
    ag_mcp_refusal_t   rf;
    u_char             note[64], *body;

    if (ctx->mcp_http || ref->status == NGX_HTTP_UNAUTHORIZED
        || (ctx->mcp == NULL && ctx->mcp_error == NULL))
    {
        return NGX_DECLINED;
    }

    ngx_memzero(&rf, sizeof(ag_mcp_refusal_t));

    rf.code = ref->code;
    rf.message = (const char *) ngx_http_agentgov_mcp_cstr(r,
                                                           ref->message.data,
                                                           ref->message.len);
    rf.request_id = (const char *) ngx_http_agentgov_mcp_cstr(r,
                                                           ctx->request_id,
                                                           sizeof(ctx->request_id));
    if (ctx->rule.len) {
        rf.rule = (const char *) ngx_http_agentgov_mcp_cstr(r, ctx->rule.data,
                                                            ctx->rule.len);
    }

    if (ctx->approval.len) {
        rf.approval = (const char *) ngx_http_agentgov_mcp_cstr(r,
                                                        ctx->approval.data,
                                                        ctx->approval.len);
    }

    if (rf.message == NULL || rf.request_id == NULL
        || (ctx->rule.len && rf.rule == NULL)
        || (ctx->approval.len && rf.approval == NULL))
    {
        goto failed;
    }

    if (ctx->mcp_error) {
        data = json_pack("{s:s, s:s}", "error", ref->code, "request_id",
                         rf.request_id);
        out = ag_mcp_error(ctx->mcp_error->id, ctx->mcp_error->code,
                           ctx->mcp_error->message, data);
        status = NGX_HTTP_BAD_REQUEST;
        goto send;
    }

    requests = 0;
    for (i = 0; i < ctx->mcp->n; i++) {
        requests += ctx->mcp->msgs[i].kind == AG_MCP_REQUEST;
    }

    if (requests == 0) {
        /* notifications and answers only: nothing to answer in JSON-RPC */
        return NGX_DECLINED;
    }

    status = NGX_HTTP_OK;
    out = ctx->mcp->batch ? json_array() : NULL;

    for (i = 0; i < ctx->mcp->n; i++) {
        m = &ctx->mcp->msgs[i];

        if (m->kind != AG_MCP_REQUEST) {
            continue;
        }

        if (ctx->mcp_refused >= 0 && (size_t) ctx->mcp_refused != i) {
            /* refused with its batch because of another member */
            (void) ngx_sprintf(note, "refused with its batch: message %uz "
                               "was refused%Z", (size_t) ctx->mcp_refused + 1);
            data = json_pack("{s:s, s:s}", "error", ref->code, "request_id",
                             rf.request_id);
            one = ag_mcp_error(m->id, AG_MCP_REFUSED, (char *) note, data);

        } else if (ngx_strcmp(ref->code, "tool_changed") == 0) {
            /* not a result the model reads: the session's tools changed */
            data = json_pack("{s:s, s:s}", "error", ref->code, "request_id",
                             rf.request_id);
            one = ag_mcp_error(m->id, AG_MCP_REFUSED, rf.message, data);

        } else {
            one = ag_mcp_refusal(m, &rf);
        }

        if (one == NULL) {
            json_decref(out);
            goto failed;
        }

        if (out == NULL) {
            out = one;
            break;
        }

        if (json_array_append_new(out, one) != 0) {
            json_decref(out);
            goto failed;
        }
    }

send:

    if (out == NULL) {
        goto failed;
    }

    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);

    if (text == NULL) {
        goto failed;
    }

    if (ctx->decision_name.len == 0) {
        ctx->decision_name.data = (u_char *) ref->decision;
        ctx->decision_name.len = ngx_strlen(ref->decision);
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        free(text);
        goto failed;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Agent-Decision");
    h->value.data = (u_char *) ref->decision;
    h->value.len = ngx_strlen(ref->decision);

    /* the buffer is sent after this returns: pool memory */
    body = ngx_http_agentgov_mcp_cstr(r, (u_char *) text, ngx_strlen(text));
    free(text);

    if (body == NULL) {
        goto failed;
    }

    rc = ngx_http_agentgov_send(r, status, &type, body, ngx_strlen(body));

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;

failed:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    return NGX_DONE;
}


static u_char *
ngx_http_agentgov_mcp_cstr(ngx_http_request_t *r, u_char *p, size_t len)
{
    u_char  *s;

    s = ngx_pnalloc(r->pool, len + 1);
    if (s == NULL) {
        return NULL;
    }

    if (len) {
        ngx_memcpy(s, p, len);
    }

    s[len] = '\0';

    return s;
}


/* --- the pins API: GET and POST /agentgov/v1/tools/<tool>/pins ----------- */

static void
ngx_http_agentgov_mcp_pin_json(void *data, ag_str_t name, ag_str_t pinned,
    ag_str_t seen)
{
    json_t  *items = data;

    (void) json_array_append_new(items,
                                 json_pack("{s:s%, s:s%, s:o}",
                                           "name", name.p, name.len,
                                           "sha256", pinned.p, pinned.len,
                                           "changed",
                                           seen.len ? json_stringn(seen.p,
                                                                   seen.len)
                                                    : json_null()));
}


/*
 * GET: the pins of a tool, with the changed definition each has seen, for
 * admins and auditors. POST {"name", "sha256"}: an admin accepts a
 * definition (SPEC section 5); it is audited as a "tool" record.
 */

ngx_int_t
ngx_http_agentgov_mcp_pins(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_str_t *tool, ngx_str_t *who, json_t *body)
{
    json_t                         *out, *items, *name, *sha;
    size_t                          i;
    ag_str_t                        t, n, d;
    ag_audit_rec_t                  rec;
    ngx_pool_cleanup_t             *cln;
    const ag_tool_t                *pt;
    ngx_http_agentgov_store_t      *s;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);

    pt = ag_policy_tool(amcf->policy, (const char *) tool->data, tool->len);

    if (pt == NULL || !pt->mcp) {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_NOT_FOUND,
                                                "not_found", "no MCP tool of "
                                                "that name in the policy");
    }

    t.p = pt->name;
    t.len = ngx_strlen(pt->name);

    if (r->method == NGX_HTTP_POST) {
        name = body ? json_object_get(body, "name") : NULL;
        sha = body ? json_object_get(body, "sha256") : NULL;

        if (!json_is_string(name) || !json_is_string(sha)
            || json_object_size(body) != 2
            || json_string_length(name) == 0
            || json_string_length(name) > AG_MCP_NAME_MAX
            || json_string_length(sha) != AG_MCP_DIGEST_HEX)
        {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                    NGX_HTTP_BAD_REQUEST,
                                                    "bad_request", "expected "
                                                    "{\"name\": \"<MCP tool>\","
                                                    " \"sha256\": \"<64 hex "
                                                    "digits>\"}");
        }

        for (i = 0; i < AG_MCP_DIGEST_HEX; i++) {
            if (!ngx_strchr("0123456789abcdef", json_string_value(sha)[i])) {
                return ngx_http_agentgov_refuse_content(r, ctx,
                                                        NGX_HTTP_BAD_REQUEST,
                                                        "bad_request",
                                                        "sha256: 64 lower-case"
                                                        " hex digits");
            }
        }

        n.p = json_string_value(name);
        n.len = json_string_length(name);
        d.p = json_string_value(sha);
        d.len = AG_MCP_DIGEST_HEX;

        if (ngx_http_agentgov_store_pin_accept(s, t, n, d)
            != NGX_AGENTGOV_STORE_OK)
        {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                  NGX_HTTP_SERVICE_UNAVAILABLE,
                                                  "gateway_error", "the pin "
                                                  "cannot be kept "
                                                  "(agentgov_zone full)");
        }

        ngx_memzero(&rec, sizeof(ag_audit_rec_t));
        rec.event = "tool";
        rec.tool = t;
        rec.mcp_method.p = "tools/list";
        rec.mcp_method.len = sizeof("tools/list") - 1;
        rec.mcp_tool = n;
        rec.op.p = "accept";
        rec.op.len = sizeof("accept") - 1;
        rec.by.p = (const char *) who->data;
        rec.by.len = who->len;
        rec.reason = d;

        if (ngx_http_agentgov_audit_event(r, &rec) != NGX_OK) {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                  NGX_HTTP_SERVICE_UNAVAILABLE,
                                                  "gateway_error", "the audit "
                                                  "log cannot be written");
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    items = json_array();
    out = json_pack("{s:s, s:o}", "tool", pt->name, "pins", items);

    if (cln == NULL || items == NULL || out == NULL) {
        json_decref(out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = out;

    ngx_http_agentgov_store_pin_list(s, t, ngx_http_agentgov_mcp_pin_json,
                                     items);

    return ngx_http_agentgov_send_json(r, NGX_HTTP_OK, out);
}
