/*
 * The access-phase handler: identity, tool, path, body, decision (SPEC section
 * 5, "Check order"). The handler is re-entrant: the request body is read with
 * the mirror module's pattern and the phases run again, so on re-entry the
 * handler continues from what its context recorded.
 */

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_agentgov.h"
#include "ag_json.h"


static ngx_int_t ngx_http_agentgov_start(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_loc_conf_t *alcf);
static ngx_int_t ngx_http_agentgov_decide(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_loc_conf_t *alcf);
static void ngx_http_agentgov_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_agentgov_resolve_tool(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_loc_conf_t *alcf,
    ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_set_path(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_read_body(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, size_t max, ngx_str_t *body,
    ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_build_call(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);
static ngx_int_t ngx_http_agentgov_pass(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref);
static void ngx_http_agentgov_args_sha256(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_agentgov_unaudited(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);
static ngx_int_t ngx_http_agentgov_stop(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_loc_conf_t *alcf,
    ngx_http_agentgov_refusal_t *ref);


/*
 * Random bytes from a per-process pool that RAND_bytes() fills 4 KiB at a
 * time: one call (and its fork check, a getpid()) per 256 request ids
 * rather than per request. A pool filled in another process (before a fork)
 * is never used.
 */

static ngx_int_t
ngx_http_agentgov_random(u_char *out, size_t n)
{
    static u_char     pool[4096];
    static size_t     left;
    static ngx_pid_t  filled_by;

    if (left < n || filled_by != ngx_pid) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) {
            left = 0;
            return NGX_ERROR;
        }

        left = sizeof(pool);
        filled_by = ngx_pid;
    }

    left -= n;
    ngx_memcpy(out, pool + left, n);

    /* used bytes do not stay in memory */
    ngx_explicit_memzero(pool + left, n);

    return NGX_OK;
}


ngx_http_agentgov_ctx_t *
ngx_http_agentgov_get_ctx(ngx_http_request_t *r)
{
    u_char                    rnd[16];
    ngx_http_agentgov_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_agentgov_module);
    if (ctx != NULL) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_agentgov_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /* request ids name records an auditor may publish: unguessable */
    if (ngx_http_agentgov_random(rnd, sizeof(rnd)) != NGX_OK) {
        return NULL;
    }

    ngx_hex_dump(ctx->request_id, rnd, sizeof(rnd));
    ctx->rc = NGX_DONE;
    ctx->started_us = ngx_http_agentgov_monotonic_us();
    ctx->entered_us = ctx->started_us;

    ngx_http_set_ctx(r, ctx, ngx_http_agentgov_module);

    return ctx;
}


ngx_int_t
ngx_http_agentgov_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_agentgov_ctx_t       *ctx;
    ngx_http_agentgov_refusal_t    ref;
    ngx_http_agentgov_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentgov_module);

    if (alcf->mode == NGX_HTTP_AGENTGOV_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_agentgov_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->audit_wait) {
        /* the phases ran again before the call's record was written */
        return NGX_AGAIN;
    }

    if (ctx->audit_failed) {
        return ngx_http_agentgov_unaudited(r, ctx);
    }

    if (ctx->held) {
        /* woken: its hold was decided, or its time is up */
        rc = ngx_http_agentgov_hold_outcome(r, ctx, &ref);

        if (rc == NGX_OK) {
            return ngx_http_agentgov_pass(r, ctx, NULL);
        }

        if (rc != NGX_DECLINED) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->decided = 1;
        ctx->rc = NGX_DONE;
        (void) ngx_http_agentgov_audit_call(r, ctx, &ref);
        return ngx_http_agentgov_refuse(r, ctx, &ref);
    }

    if (ctx->decided) {
        return ctx->rc;
    }

    ctx->entered_us = ngx_http_agentgov_monotonic_us();

    if (!ctx->started) {
        rc = ngx_http_agentgov_start(r, ctx, alcf);

        /* NGX_OK after a decision: a refusal that monitor mode let pass */
        if (rc != NGX_OK || ctx->decided) {
            return rc;
        }
    }

    if (ctx->reading_body && !ctx->body_read) {
        /* the phases ran again before the body was complete */
        return NGX_DONE;
    }

    return ngx_http_agentgov_decide(r, ctx, alcf);
}


/*
 * Checks that need no body: identity, tool and path. Then, if the call has a
 * body, starts reading it. NGX_OK means go on to the decision now.
 */

static ngx_int_t
ngx_http_agentgov_start(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_loc_conf_t *alcf)
{
    ngx_int_t                    rc;
    ngx_http_agentgov_refusal_t  ref;

    ctx->started = 1;

    rc = ngx_http_agentgov_identify(r, ctx, 0, &ref);
    if (rc == NGX_DECLINED) {
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_agentgov_task_check(r, ctx, &ref);
    if (rc == NGX_DECLINED) {
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_agentgov_resolve_tool(r, ctx, alcf, &ref);
    if (rc == NGX_DECLINED) {
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    rc = ngx_http_agentgov_task_scope(r, ctx, &ref);
    if (rc == NGX_DECLINED) {
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    rc = ngx_http_agentgov_set_path(r, ctx, &ref);
    if (rc == NGX_DECLINED) {
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        return NGX_OK;
    }

    if (r->headers_in.content_length_n > (off_t) alcf->body_max) {
        (void) ngx_http_agentgov_refusal(&ref,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "body_too_large", "request body is "
                                         "larger than agentgov_body_max");
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    ctx->reading_body = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_agentgov_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    /* the decision's time leaves out the wait for the body */
    ctx->busy_us += ngx_http_agentgov_monotonic_us() - ctx->entered_us;

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


static void
ngx_http_agentgov_body_handler(ngx_http_request_t *r)
{
    ngx_http_agentgov_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_agentgov_module);
    ctx->body_read = 1;

    /* the body stays for proxy_pass after the access phase read it */
    r->preserve_body = 1;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static ngx_int_t
ngx_http_agentgov_decide(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_loc_conf_t *alcf)
{
    char                            err[256];
    ngx_str_t                       body;
    ngx_int_t                       rc;
    ngx_pool_cleanup_t             *cln;
    ngx_http_agentgov_refusal_t     ref;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (ctx->body_read) {
        rc = ngx_http_agentgov_read_body(r, ctx, alcf->body_max, &body, &ref);
        if (rc == NGX_DECLINED) {
            return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->raw_body = body;

        if (body.len && amcf->audit) {
            ngx_http_agentgov_args_sha256(r, ctx, &body);
        }

        if (ctx->tool->mcp && r->method == NGX_HTTP_POST) {
            rc = ngx_http_agentgov_mcp_parse(r, ctx, &body, &ref);
            if (rc == NGX_DECLINED) {
                return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
            }

            if (rc != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

        } else if (body.len && ctx->tool->reads_body) {
            cln = ngx_pool_cleanup_add(r->pool, 0);
            if (cln == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ctx->body = ag_json_parse((const char *) body.data, body.len, err,
                                      sizeof(err));
            if (ctx->body == NULL) {
                ref.status = NGX_HTTP_BAD_REQUEST;
                ref.code = "bad_request";
                ref.decision = "deny";
                ref.retry_after = 0;
                ref.message.len = ngx_strlen(err);
                ref.message.data = ngx_pnalloc(r->pool, ref.message.len);
                if (ref.message.data == NULL) {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }

                ngx_memcpy(ref.message.data, err, ref.message.len);
                return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
            }

            cln->handler = ngx_http_agentgov_json_cleanup;
            cln->data = ctx->body;
        }
    }

    if (ctx->tool->mcp && r->method == NGX_HTTP_POST && !ctx->body_read) {
        /* an MCP POST without a body is malformed JSON-RPC */
        body.len = 0;
        body.data = (u_char *) "";

        rc = ngx_http_agentgov_mcp_parse(r, ctx, &body, &ref);
        if (rc == NGX_DECLINED) {
            return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_agentgov_build_call(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* secrets, before the rules (SPEC section 5, "Check order") */

    rc = ngx_http_agentgov_scan(r, ctx, ctx->body_read ? &body : NULL, &ref);
    if (rc == NGX_DECLINED) {
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->tool->mcp) {
        rc = ngx_http_agentgov_mcp_eval(r, ctx, &ref);
        if (rc == NGX_DECLINED) {
            return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (ag_policy_eval(amcf->policy, &ctx->call, &ctx->decision, NULL,
                              NULL)
               != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "agentgov: policy evaluation failed, call denied");
    }

    if (ctx->decision.rule) {
        ctx->rule.data = (u_char *) ctx->decision.rule->id;
        ctx->rule.len = ngx_strlen(ctx->rule.data);
    }

    switch (ctx->decision.effect) {

    case AG_ALLOW:
        rc = ngx_http_agentgov_task_spend(r, ctx, &ref);
        if (rc == NGX_DECLINED) {
            return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_agentgov_pass(r, ctx, NULL);

    case AG_HOLD:
        if (alcf->mode == NGX_HTTP_AGENTGOV_MONITOR) {
            (void) ngx_http_agentgov_refusal(&ref, NGX_HTTP_FORBIDDEN,
                                             "approval_pending", "approval "
                                             "required");
            return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
        }

        rc = ngx_http_agentgov_hold(r, ctx, &ref);

        if (rc == NGX_AGAIN || rc == NGX_DONE) {
            /* parked, or answered 202 (async) */
            return rc;
        }

        if (rc == NGX_OK) {
            /* an async approval's one-time grant */
            return ngx_http_agentgov_pass(r, ctx, NULL);
        }

        if (rc == NGX_DECLINED) {
            return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    default:
        ref.status = NGX_HTTP_FORBIDDEN;
        ref.code = "denied";
        ref.decision = "deny";
        ref.retry_after = 0;
        ref.message.data = (u_char *) ctx->decision.reason;
        ref.message.len = ngx_strlen(ref.message.data);
        return ngx_http_agentgov_stop(r, ctx, alcf, &ref);
    }
}


/*
 * The call goes on to its tool (ref: the refusal monitor mode let pass, or
 * NULL), once its record is in the audit log: nothing of the gateway's own
 * reaches the tool.
 */

static ngx_int_t
ngx_http_agentgov_pass(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    ngx_int_t                    rc;
    ngx_http_agentgov_refusal_t  fail;

    if (ctx->decision_name.len == 0) {
        ngx_str_set(&ctx->decision_name, "allow");
    }

    /* what the agent must not hold goes, the tool's credential comes */

    if (ngx_http_agentgov_strip(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_agentgov_inject(r, ctx, &fail);

    if (rc == NGX_DECLINED) {
        ngx_str_null(&ctx->decision_name);
        ctx->decided = 1;
        ctx->rc = NGX_DONE;
        (void) ngx_http_agentgov_audit_call(r, ctx, &fail);
        return ngx_http_agentgov_refuse(r, ctx, &fail);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* its record goes out with this event loop iteration's, then the call */
    rc = ngx_http_agentgov_audit_call_later(r, ctx, ref);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->decided = 1;
    ctx->passed = 1;
    ctx->rc = NGX_OK;

    return rc;
}


/* The call's record could not be written (fail=closed): it does not go on. */

static ngx_int_t
ngx_http_agentgov_unaudited(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    ngx_http_agentgov_refusal_t  fail;

    ctx->audit_failed = 0;
    ctx->passed = 0;
    ctx->rc = NGX_DONE;
    ngx_str_set(&ctx->decision_name, "deny");

    (void) ngx_http_agentgov_refusal(&fail, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "gateway_error", "the audit log "
                                     "cannot be written");
    return ngx_http_agentgov_refuse(r, ctx, &fail);
}


/*
 * A refusal. Under "agentgov monitor" it is recorded as would-be and the call
 * goes on; otherwise it is recorded and the JSON error of SPEC section 9 is
 * the answer (503 instead when the record cannot be written, fail=closed).
 */

static ngx_int_t
ngx_http_agentgov_stop(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_loc_conf_t *alcf, ngx_http_agentgov_refusal_t *ref)
{
    ngx_http_agentgov_refusal_t  fail;

    if (ctx->rule.len == 0 && ctx->decision.rule) {
        ctx->rule.data = (u_char *) ctx->decision.rule->id;
        ctx->rule.len = ngx_strlen(ctx->rule.data);
    }

    /* a refusal before the tool was resolved is still the location's tool's
       in the record and the metrics (configuration, not the request) */
    if (ctx->tool == NULL) {
        ctx->tool = alcf->tool;
    }

    if (alcf->mode == NGX_HTTP_AGENTGOV_MONITOR) {
        if (ctx->decision.effect == AG_HOLD) {
            ngx_str_set(&ctx->decision_name, "monitor-hold");

        } else {
            ngx_str_set(&ctx->decision_name, "monitor-deny");
        }

        /* a finding's request line may hold the secret: no request log */
        ngx_log_error(NGX_LOG_INFO,
                      ctx->nfindings ? ngx_cycle->log : r->connection->log, 0,
                      "agentgov: monitor: would refuse with %s: %V",
                      ref->code, &ref->message);

        return ngx_http_agentgov_pass(r, ctx, ref);
    }

    ctx->decided = 1;
    ctx->rc = NGX_DONE;

    if (ngx_http_agentgov_audit_call(r, ctx, ref) != NGX_OK) {
        (void) ngx_http_agentgov_refusal(&fail, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "the audit log "
                                         "cannot be written");
        return ngx_http_agentgov_refuse(r, ctx, &fail);
    }

    return ngx_http_agentgov_refuse(r, ctx, ref);
}


/* The SHA-256 of the body for the call's record (never the body itself). */

static void
ngx_http_agentgov_args_sha256(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *body)
{
    u_char        md[32];
    unsigned int  n;

    if (EVP_Digest(body->data, body->len, md, &n, EVP_sha256(), NULL) != 1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "agentgov: SHA-256 of the body failed");
        return;
    }

    ngx_hex_dump(ctx->args_sha256, md, sizeof(md));
}


static ngx_int_t
ngx_http_agentgov_resolve_tool(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_loc_conf_t *alcf,
    ngx_http_agentgov_refusal_t *ref)
{
    ngx_str_t                      *host;
    ngx_http_agentgov_main_conf_t  *amcf;

    if (alcf->tool) {
        ctx->tool = alcf->tool;
        return NGX_OK;
    }

    /* forward-proxy use: the request's host names the tool */

    ctx->forward_proxy = 1;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    host = &r->headers_in.server;

    if (host->len) {
        ctx->tool = ag_policy_tool_by_host(amcf->policy,
                                           (const char *) host->data,
                                           host->len);
    }

    if (ctx->tool == NULL) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN, "denied",
                                         "no tool of the policy serves this "
                                         "host");
    }

    return NGX_OK;
}


/*
 * The path rules see: nginx's normalised r->uri relative to the location
 * (SPEC section 5). Raw forms a tool might read as another path are refused.
 */

static ngx_int_t
ngx_http_agentgov_set_path(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    u_char                    *p, *last, *q;
    size_t                     len;
    uintptr_t                  escape;
    ngx_str_t                  raw, path;
    ngx_http_core_loc_conf_t  *clcf;

    raw = r->unparsed_uri;
    p = ngx_strlchr(raw.data, raw.data + raw.len, '?');
    if (p) {
        raw.len = p - raw.data;
    }

    last = raw.data + raw.len;

    for (p = raw.data; p < last; p++) {
        if (*p == '\\' || *p == ';' || *p == '\0') {
            goto ambiguous;
        }

        if (*p == '%' && last - p >= 3) {
            if ((p[1] == '2' && (p[2] == 'f' || p[2] == 'F'))
                || (p[1] == '5' && (p[2] == 'c' || p[2] == 'C'))
                || (p[1] == '0' && p[2] == '0'))
            {
                goto ambiguous;
            }
        }
    }

    /* decoded forms that nginx would forward unescaped */
    for (p = r->uri.data; p < r->uri.data + r->uri.len; p++) {
        if (*p == '\\' || *p == ';' || *p == '\0') {
            goto ambiguous;
        }
    }

    path = r->uri;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!ctx->forward_proxy
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && !clcf->named
        && path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;

        if (path.len == 0 || path.data[0] != '/') {
            q = ngx_pnalloc(r->pool, path.len + 1);
            if (q == NULL) {
                return NGX_ERROR;
            }

            q[0] = '/';
            ngx_memcpy(q + 1, path.data, path.len);
            path.data = q;
            path.len++;
        }
    }

    ctx->path = path;

    /* $agentgov_uri: the normalised path, escaped again, and the query */

    escape = 2 * ngx_escape_uri(NULL, path.data, path.len, NGX_ESCAPE_URI);
    len = path.len + escape + (r->args.len ? 1 + r->args.len : 0);

    q = ngx_pnalloc(r->pool, len);
    if (q == NULL) {
        return NGX_ERROR;
    }

    ctx->uri.data = q;

    if (escape) {
        q = (u_char *) ngx_escape_uri(q, path.data, path.len, NGX_ESCAPE_URI);

    } else {
        q = ngx_cpymem(q, path.data, path.len);
    }

    if (r->args.len) {
        *q++ = '?';
        q = ngx_cpymem(q, r->args.data, r->args.len);
    }

    ctx->uri.len = q - ctx->uri.data;

    return NGX_OK;

ambiguous:

    return ngx_http_agentgov_refusal(ref, NGX_HTTP_BAD_REQUEST, "bad_request",
                                     "ambiguous path: %2F, %5C, \\, %00 and ; "
                                     "are refused");
}


/*
 * The whole body in one buffer, from memory or from the temporary file it was
 * buffered to. It stays in place for the proxy.
 */

static ngx_int_t
ngx_http_agentgov_read_body(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    size_t max, ngx_str_t *body, ngx_http_agentgov_refusal_t *ref)
{
    off_t         total, size;
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = NULL;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    total = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        total += ngx_buf_size(cl->buf);
    }

    if (total > (off_t) max) {
        return ngx_http_agentgov_refusal(ref,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "body_too_large", "request body is "
                                         "larger than agentgov_body_max");
    }

    if (total == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) total);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        size = b->file_last - b->file_pos;

        n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);
        if (n != (ssize_t) size) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "agentgov: cannot read the buffered request body");
            return NGX_ERROR;
        }

        p += size;
    }

    body->len = p - body->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_build_call(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    ngx_uint_t        i, n;
    ag_call_t        *call;
    ag_header_t      *hdrs;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    call = &ctx->call;

    if (ctx->agent) {
        call->agent.p = ctx->agent->name;
        call->agent.len = ngx_strlen(ctx->agent->name);
        call->owner.p = ctx->agent->owner;
        call->owner.len = call->owner.p ? ngx_strlen(call->owner.p) : 0;
    }

    if (ctx->has_task) {
        call->task = ctx->task.id;
        call->intent = ctx->task.intent;
        call->chain = ctx->task.chain;
        call->depth = ctx->task.depth;
    }

    call->tool.p = ctx->tool->name;
    call->tool.len = ngx_strlen(ctx->tool->name);
    call->method.p = (const char *) r->method_name.data;
    call->method.len = r->method_name.len;
    call->host.p = (const char *) r->headers_in.server.data;
    call->host.len = r->headers_in.server.len;
    call->path.p = (const char *) ctx->path.data;
    call->path.len = ctx->path.len;
    call->query.p = (const char *) r->args.data;
    call->query.len = r->args.len;
    call->body = ctx->body;
    call->now = ngx_time();

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    hdrs = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ag_header_t));
    if (hdrs == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            hdrs[n].name.p = (const char *) h[i].key.data;
            hdrs[n].name.len = h[i].key.len;
            hdrs[n].value.p = (const char *) h[i].value.data;
            hdrs[n].value.len = h[i].value.len;
            n++;
        }
    }

    call->headers = hdrs;
    call->nheaders = n;

    return NGX_OK;
}


/*
 * Subrequests (SSI, mirror, auth_request targets) skip the access phase, so
 * a governed location refuses them here rather than let them reach the tool
 * unchecked.
 */

ngx_int_t
ngx_http_agentgov_subrequest_handler(ngx_http_request_t *r)
{
    ngx_http_agentgov_ctx_t       *ctx;
    ngx_http_agentgov_refusal_t    ref;
    ngx_http_agentgov_loc_conf_t  *alcf;

    if (r == r->main) {
        return NGX_DECLINED;
    }

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_agentgov_module);

    if (alcf->mode == NGX_HTTP_AGENTGOV_OFF) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_agentgov_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "agentgov: subrequest \"%V\" into a governed location "
                  "refused", &r->uri);

    (void) ngx_http_agentgov_refusal(&ref, NGX_HTTP_FORBIDDEN, "denied",
                                     "subrequests into a governed location "
                                     "are refused");
    ctx->decided = 1;

    /* refused either way: the record cannot change the answer */
    (void) ngx_http_agentgov_audit_call(r, ctx, &ref);

    return ngx_http_agentgov_refuse(r, ctx, &ref);
}

