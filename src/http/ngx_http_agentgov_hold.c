/*
 * Holding a call until a person decides (SPEC section 6): the request is
 * parked in the worker that accepted it, body already read, and answers
 * nothing until its hold is decided, expires, or the client goes away.
 *
 * Parking follows limit_req's delay (NGINX-NOTES): the read handler tests
 * for the client going away, the write event carries the deadline timer
 * with `delayed` set, and the access handler returns NGX_AGAIN. Waking
 * costs nothing per hold: the store keeps one decision counter, and each
 * worker's one timer (every NGX_HTTP_AGENTGOV_HOLD_TICK ms, cancelable)
 * walks its own parked requests only when the counter moved.
 */

#include <openssl/rand.h>

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_audit.h"
#include "ag_hold.h"
#include "ag_match.h"
#include "ag_secrets.h"
#include "ag_util.h"


#define NGX_HTTP_AGENTGOV_HOLD_TICK     50        /* ms */
#define NGX_HTTP_AGENTGOV_PREVIEW       2048      /* bytes of the body */


struct ngx_http_agentgov_parked_s {
    ngx_str_node_t                   sn;         /* by approval id */
    ngx_queue_t                      queue;
    ngx_http_request_t              *r;          /* NULL once off the queue */
    ngx_http_request_t              *request;
    ngx_http_agentgov_ctx_t         *ctx;
};


static void ngx_http_agentgov_hold_wake_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_agentgov_hold_accepted(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);
static ngx_int_t ngx_http_agentgov_hold_show(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_hold_t *h);
static ngx_int_t ngx_http_agentgov_hold_grant(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_table_elt_t *grant, ngx_uint_t n,
    u_char *digest, ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_hold_find(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_store_t *s,
    u_char *digest);
static ngx_int_t ngx_http_agentgov_hold_pending(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx);
static void ngx_http_agentgov_hold_cleanup(void *data);
static void ngx_http_agentgov_hold_closed(void *data, ag_str_t id);
static void ngx_http_agentgov_hold_unpark(ngx_http_agentgov_parked_t *pk);
static void ngx_http_agentgov_hold_wake(ngx_http_request_t *r);
static void ngx_http_agentgov_hold_tick(ngx_event_t *ev);
static ngx_int_t ngx_http_agentgov_hold_close(void *data,
    const ngx_http_agentgov_hold_t *h, ag_hold_t *votes, u_char *reason,
    size_t *reason_len);


/* per worker: the parked requests (a queue, and a tree by approval id),
   and the counter last seen */
static ngx_queue_t        ngx_http_agentgov_parked;
static ngx_rbtree_t       ngx_http_agentgov_parked_tree;
static ngx_rbtree_node_t  ngx_http_agentgov_parked_sentinel;
static ngx_uint_t         ngx_http_agentgov_parked_seen;
static ngx_event_t        ngx_http_agentgov_hold_ev;
static ngx_connection_t   ngx_http_agentgov_hold_dummy;
static ngx_http_agentgov_store_t  *ngx_http_agentgov_hold_store;

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


ngx_int_t
ngx_http_agentgov_hold_init_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_main_conf_t  *amcf;

    ngx_queue_init(&ngx_http_agentgov_parked);
    ngx_rbtree_init(&ngx_http_agentgov_parked_tree,
                    &ngx_http_agentgov_parked_sentinel,
                    ngx_str_rbtree_insert_value);

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_agentgov_module);

    if (amcf == NULL || amcf->zone == NULL) {
        return NGX_OK;
    }

    ngx_http_agentgov_hold_store = amcf->zone->data;

    ngx_http_agentgov_hold_dummy.fd = (ngx_socket_t) -1;
    ngx_http_agentgov_hold_ev.handler = ngx_http_agentgov_hold_tick;
    ngx_http_agentgov_hold_ev.data = &ngx_http_agentgov_hold_dummy;
    ngx_http_agentgov_hold_ev.log = cycle->log;

    /* an old worker still exits once only this timer is left; its parked
       requests keep their own timers */
    ngx_http_agentgov_hold_ev.cancelable = 1;

    return NGX_OK;
}


/*
 * The call is held: record the hold, write its call record, park the
 * request. NGX_AGAIN (parked), or a refusal through ref (NGX_DECLINED).
 */

ngx_int_t
ngx_http_agentgov_hold(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    u_char                         *p, *rules, digest[AG_HOLD_DIGEST_HEX];
    size_t                          len;
    ag_str_t                        id;
    ngx_uint_t                      n, async, mcp_async;
    ngx_table_elt_t                *grant;
    ngx_int_t                       result;
    ngx_uint_t                      i;
    ngx_msec_t                      deadline;
    int64_t                         now, timeout;
    ngx_connection_t               *c;
    ngx_http_cleanup_t             *cln;
    ngx_http_agentgov_hold_t        h;
    ngx_http_agentgov_parked_t     *pk;
    ngx_http_agentgov_store_t      *s;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);
    c = r->connection;
    now = ngx_time();
    mcp_async = 0;

    if (s == NULL) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "holds need "
                                         "agentgov_zone");
    }

    if (ctx->mcp) {
        /* an MCP call is found again by what it asks, whatever its id */
        if (ag_mcp_call_digest(&ctx->call, (char *) digest) != 0) {
            return NGX_ERROR;
        }

        mcp_async = 1;
        for (i = 0; i < ctx->decision.nholds; i++) {
            if (ctx->decision.holds[i]->wait) {
                mcp_async = 0;
            }
        }

        if (mcp_async) {
            result = ngx_http_agentgov_hold_find(r, ctx, s, digest);
            if (result != NGX_DECLINED) {
                return result;
            }
        }

    } else if (ag_hold_digest(&ctx->call, (const char *) ctx->raw_body.data,
                              ctx->raw_body.len, (char *) digest) != 0)
    {
        return NGX_ERROR;
    }

    /* the repeat of an approved async call: its one-time grant */

    grant = ngx_http_agentgov_find_header(r, "Agent-Approval",
                                          sizeof("Agent-Approval") - 1, &n);
    if (grant && !ctx->mcp) {
        return ngx_http_agentgov_hold_grant(r, ctx, grant, n, digest, ref);
    }

    ngx_memzero(&h, sizeof(h));

    if (ag_task_id_new((char *) ctx->approval_id) != 0) {
        return NGX_ERROR;
    }

    /* the hold rules' ids, comma-joined */
    len = 0;
    for (i = 0; i < ctx->decision.nholds; i++) {
        len += ngx_strlen(ctx->decision.holds[i]->id) + 1;
    }

    rules = ngx_pnalloc(r->pool, len + 1);
    if (rules == NULL) {
        return NGX_ERROR;
    }

    p = rules;
    for (i = 0; i < ctx->decision.nholds; i++) {
        if (i) {
            *p++ = ',';
        }
        p = ngx_cpymem(p, ctx->decision.holds[i]->id,
                       ngx_strlen(ctx->decision.holds[i]->id));
    }

#define ngx_http_agentgov_hset(i, v)  h.str[i] = (v)

    h.str[NGX_HTTP_AGENTGOV_H_ID].p = (const char *) ctx->approval_id;
    h.str[NGX_HTTP_AGENTGOV_H_ID].len = AG_TASK_ID_LEN;
    ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_AGENT, ctx->call.agent);
    ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_OWNER, ctx->call.owner);
    ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_TASK, ctx->call.task);
    ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_INTENT, ctx->call.intent);
    ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_CHAIN, ctx->call.chain);
    ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_TOOL, ctx->call.tool);

    if (ctx->mcp) {
        /* an MCP call's action: its JSON-RPC method and what it names
           (a method with a '/' tells the API it is one) */
        ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_METHOD, ctx->call.mcp_method);
        ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_PATH,
                               ctx->call.mcp_tool.len ? ctx->call.mcp_tool
                               : ctx->call.mcp_resource.len
                                 ? ctx->call.mcp_resource
                                 : ctx->call.mcp_prompt);

    } else {
        ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_METHOD, ctx->call.method);
        ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_HOST, ctx->call.host);
        ngx_http_agentgov_hset(NGX_HTTP_AGENTGOV_H_PATH, ctx->call.path);
    }

#undef ngx_http_agentgov_hset

    h.str[NGX_HTTP_AGENTGOV_H_RULES].p = (const char *) rules;
    h.str[NGX_HTTP_AGENTGOV_H_RULES].len = p - rules;
    h.str[NGX_HTTP_AGENTGOV_H_REASON].p = ctx->decision.reason;
    h.str[NGX_HTTP_AGENTGOV_H_REASON].len = ngx_strlen(ctx->decision.reason);

    /* the rules' shortest timeout, capped by agentgov_hold_timeout */
    timeout = ag_hold_timeout(ctx->decision.holds, ctx->decision.nholds,
                              INT64_MAX / 1000) * 1000;

    if (timeout > (int64_t) amcf->hold_timeout) {
        timeout = amcf->hold_timeout;
    }

    h.requested = now;
    h.expires = now + (timeout + 999) / 1000;

    if (ngx_http_agentgov_hold_show(r, ctx, &h) != NGX_OK) {
        return NGX_ERROR;
    }

    h.str[NGX_HTTP_AGENTGOV_H_DIGEST].p = (const char *) digest;
    h.str[NGX_HTTP_AGENTGOV_H_DIGEST].len = AG_HOLD_DIGEST_HEX;

    /* Prefer: respond-async (RFC 7240): answer now, grant later */
    p = NULL;
    grant = ngx_http_agentgov_find_header(r, "Prefer", sizeof("Prefer") - 1,
                                          &n);
    if (grant) {
        p = ngx_strlcasestrn(grant->value.data,
                             grant->value.data + grant->value.len,
                             (u_char *) "respond-async",
                             sizeof("respond-async") - 2);
    }

    async = (p != NULL && !ctx->mcp) || mcp_async;

    if (async) {
        h.grant_ttl = 600;

        for (i = 0; i < ctx->decision.nholds; i++) {
            if (ctx->decision.holds[i]->grant_ttl > 0
                && ctx->decision.holds[i]->grant_ttl < h.grant_ttl)
            {
                h.grant_ttl = ctx->decision.holds[i]->grant_ttl;
            }
        }
    }

    /* an async hold parks nothing in any worker */
    h.pid = async ? 0 : ngx_pid;

    rc = ngx_http_agentgov_store_hold_add(s, &h,
                                          ctx->agent && ctx->agent->max_pending
                                          ? (ngx_uint_t) ctx->agent->max_pending
                                          : 20, now);

    if (rc == NGX_AGENTGOV_STORE_LIMIT) {
        (void) ngx_http_agentgov_refusal(ref, NGX_HTTP_TOO_MANY_REQUESTS,
                                         "limit_exceeded", "the agent has "
                                         "its limit of pending approvals "
                                         "(max_pending)");
        return NGX_DECLINED;
    }

    if (rc != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "the hold cannot "
                                         "be recorded (agentgov_zone full)");
    }

    ngx_str_set(&ctx->decision_name, "hold");
    ctx->approval.data = ctx->approval_id;
    ctx->approval.len = AG_TASK_ID_LEN;

    if (ngx_http_agentgov_audit_call(r, ctx, NULL) != NGX_OK) {
        /* not recorded: not held either */
        id.p = (const char *) ctx->approval_id;
        id.len = AG_TASK_ID_LEN;

        (void) ngx_http_agentgov_store_hold_update(s, id,
                                               ngx_http_agentgov_hold_close,
                                               (void *) AG_HOLD_CANCELLED,
                                               now, &result);

        return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "the audit log "
                                         "cannot be written");
    }

    if (async) {
        ctx->decided = 1;
        ctx->rc = NGX_DONE;

        if (ctx->mcp) {
            return ngx_http_agentgov_hold_pending(r, ctx);
        }

        return ngx_http_agentgov_hold_accepted(r, ctx);
    }

    /* park */

    pk = ngx_palloc(r->pool, sizeof(ngx_http_agentgov_parked_t));
    cln = ngx_http_cleanup_add(r, 0);
    if (pk == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    pk->r = r;
    pk->request = r;
    pk->ctx = ctx;
    pk->sn.str.data = ctx->approval_id;
    pk->sn.str.len = AG_TASK_ID_LEN;
    pk->sn.node.key = ngx_crc32_short(ctx->approval_id, AG_TASK_ID_LEN);
    ngx_queue_insert_tail(&ngx_http_agentgov_parked, &pk->queue);
    ngx_rbtree_insert(&ngx_http_agentgov_parked_tree, &pk->sn.node);

    cln->handler = ngx_http_agentgov_hold_cleanup;
    cln->data = pk;

    ctx->held = 1;
    ctx->parked = pk;

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);

    } else if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_agentgov_hold_wake_handler;

    deadline = (ngx_msec_t) timeout;

    c->write->delayed = 1;
    ngx_add_timer(c->write, deadline);

    if (!ngx_http_agentgov_hold_ev.timer_set) {
        ngx_http_agentgov_parked_seen =
                     ngx_http_agentgov_store_hold_counter(s);
        ngx_add_timer(&ngx_http_agentgov_hold_ev, NGX_HTTP_AGENTGOV_HOLD_TICK);
    }

    /* decided before the counter was read: the tick would not see it */
    id.p = (const char *) ctx->approval_id;
    id.len = AG_TASK_ID_LEN;

    if (ngx_http_agentgov_store_hold_get(s, id, &h, NULL, 0)
        == NGX_AGENTGOV_STORE_OK
        && h.votes.state != AG_HOLD_PENDING)
    {
        ngx_http_agentgov_hold_unpark(pk);
        ngx_http_agentgov_hold_wake(r);
    }

    return NGX_AGAIN;
}


/*
 * What an approver is shown (SPEC section 6): first the values the matching
 * rules read, then the first 2 KiB of the body; secrets in either are
 * overwritten, and bytes that are not UTF-8 shown as '?'.
 */

static ngx_int_t
ngx_http_agentgov_hold_show(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_hold_t *h)
{
    u_char                         *p, *src, *last;
    char                           *text;
    size_t                          i, j, n, len;
    json_t                         *values, *v;
    const ag_rule_t                *rule;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    values = json_object();
    if (values == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->decision.nholds; i++) {
        rule = ctx->decision.holds[i];

        for (j = 0; j < rule->nreads; j++) {
            v = ag_subject_value(&ctx->call, rule->reads[j],
                                 ngx_strlen(rule->reads[j]));

            (void) json_object_set_new(values, rule->reads[j],
                                       v ? v : json_null());
        }
    }

    text = json_dumps(values, JSON_COMPACT);
    json_decref(values);

    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);
    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(p, text, len);
    free(text);

    /* a value too long for the record is shown as none rather than cut
       into JSON that does not parse */
    if (len > 4096
        || (amcf->secrets && ag_secrets_redact(amcf->secrets, (char *) p, len)
                             != 0))
    {
        p = (u_char *) "{}";
        len = 2;
    }

    h->str[NGX_HTTP_AGENTGOV_H_VALUES].p = (const char *) p;
    h->str[NGX_HTTP_AGENTGOV_H_VALUES].len = len;

    /* the body's beginning, as valid UTF-8 */

    len = ngx_min(ctx->raw_body.len, NGX_HTTP_AGENTGOV_PREVIEW);

    p = ngx_pnalloc(r->pool, len ? len : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    src = ctx->raw_body.data;
    last = src + len;

    for (i = 0; src < last; ) {
        n = ag_utf8_len(src, last - src);

        if (n == 0 || *src == '\0') {
            p[i++] = '?';
            src++;
            continue;
        }

        ngx_memcpy(p + i, src, n);
        i += n;
        src += n;
    }

    if (amcf->secrets && ag_secrets_redact(amcf->secrets, (char *) p, i)
                         != 0)
    {
        i = 0;
    }

    h->str[NGX_HTTP_AGENTGOV_H_PREVIEW].p = (const char *) p;
    h->str[NGX_HTTP_AGENTGOV_H_PREVIEW].len = i;

    return NGX_OK;
}


/* 202 {"approval", "status"} with Agent-Decision: hold (SPEC section 6). */

static ngx_int_t
ngx_http_agentgov_hold_accepted(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    u_char           *p;
    size_t            len;
    ngx_int_t         rc;
    ngx_str_t         type = ngx_string("application/json");
    ngx_table_elt_t  *h;

    len = sizeof("{\"approval\":\"\",\"status\":\"/agentgov/v1/approvals/\"}\n")
          - 1 + 2 * AG_TASK_ID_LEN;

    p = ngx_pnalloc(r->pool, len);
    h = ngx_list_push(&r->headers_out.headers);

    if (p == NULL || h == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Agent-Decision");
    ngx_str_set(&h->value, "hold");

    (void) ngx_sprintf(p, "{\"approval\":\"%*s\",\"status\":"
                       "\"/agentgov/v1/approvals/%*s\"}\n",
                       (size_t) AG_TASK_ID_LEN, ctx->approval_id,
                       (size_t) AG_TASK_ID_LEN, ctx->approval_id);

    rc = ngx_http_agentgov_send(r, NGX_HTTP_ACCEPTED, &type, p, len);
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* The grant in Agent-Approval, used once for exactly this call. */

static ngx_int_t
ngx_http_agentgov_hold_grant(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_table_elt_t *grant, ngx_uint_t n,
    u_char *digest, ngx_http_agentgov_refusal_t *ref)
{
    ag_str_t                    id, d;
    ngx_http_agentgov_store_t  *s;

    s = ngx_http_agentgov_store(r);

    id.p = (const char *) grant->value.data;
    id.len = grant->value.len;
    d.p = (const char *) digest;
    d.len = AG_HOLD_DIGEST_HEX;

    if (n == 1 && id.len == AG_TASK_ID_LEN
        && ngx_http_agentgov_store_hold_grant(s, id, ctx->call.agent,
                                              ctx->call.task, d, ngx_time())
           == NGX_AGENTGOV_STORE_OK)
    {
        ngx_memcpy(ctx->approval_id, id.p, AG_TASK_ID_LEN);
        ctx->approval.data = ctx->approval_id;
        ctx->approval.len = AG_TASK_ID_LEN;
        ctx->approved = 1;
        ngx_str_set(&ctx->decision_name, "approved");

        return NGX_OK;
    }

    ngx_str_set(&ctx->decision_name, "deny");

    return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN, "denied",
                                     "the approval does not grant this call: "
                                     "not approved, used already, past its "
                                     "grant_ttl, or for another call, agent "
                                     "or task");
}


/*
 * An MCP call held before (SPEC section 6): its approved grant lets it pass
 * (NGX_OK); while its hold is pending it is answered approval_pending again
 * with the same id (NGX_DONE); NGX_DECLINED when a new hold is needed.
 */

static ngx_int_t
ngx_http_agentgov_hold_find(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_store_t *s,
    u_char *digest)
{
    ag_str_t                      d;
    ngx_http_agentgov_refusal_t   ref;
    ngx_http_agentgov_store_rc_e  rc;

    d.p = (const char *) digest;
    d.len = AG_MCP_DIGEST_HEX;

    rc = ngx_http_agentgov_store_hold_find(s, ctx->call.agent, ctx->call.task,
                                           d, ngx_time(), ctx->approval_id);

    if (rc == NGX_AGENTGOV_STORE_NOT_FOUND) {
        return NGX_DECLINED;
    }

    ctx->approval.data = ctx->approval_id;
    ctx->approval.len = AG_TASK_ID_LEN;

    if (rc == NGX_AGENTGOV_STORE_OK) {
        ctx->approved = 1;
        ngx_str_set(&ctx->decision_name, "approved");
        return NGX_OK;
    }

    ngx_str_set(&ctx->decision_name, "hold");
    ctx->decided = 1;
    ctx->rc = NGX_DONE;

    if (ngx_http_agentgov_audit_call(r, ctx, NULL) != NGX_OK) {
        (void) ngx_http_agentgov_refusal(&ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "the audit log "
                                         "cannot be written");
        return ngx_http_agentgov_refuse(r, ctx, &ref);
    }

    return ngx_http_agentgov_hold_pending(r, ctx);
}


/* The refused tool result of an MCP hold: approval_pending and its id. */

static ngx_int_t
ngx_http_agentgov_hold_pending(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    ngx_http_agentgov_refusal_t  ref;

    (void) ngx_http_agentgov_refusal(&ref, NGX_HTTP_ACCEPTED,
                                     "approval_pending", "this call needs a "
                                     "person's approval: it was asked for; "
                                     "make the same call again once it is "
                                     "approved");
    ref.decision = "hold";

    return ngx_http_agentgov_refuse(r, ctx, &ref);
}


/* Under the store's lock: close a pending hold with the state in data. */

static ngx_int_t
ngx_http_agentgov_hold_close(void *data, const ngx_http_agentgov_hold_t *h,
    ag_hold_t *votes, u_char *reason, size_t *reason_len)
{
    if (votes->state != AG_HOLD_PENDING) {
        return 0;
    }

    votes->state = (ag_hold_state_t) (uintptr_t) data;

    return 1;
}


static void
ngx_http_agentgov_hold_wake_handler(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


/* Wake a parked request now (its hold was decided). */

static void
ngx_http_agentgov_hold_wake(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    wev->delayed = 0;
    ngx_post_event(wev, &ngx_posted_events);
}


static void
ngx_http_agentgov_hold_tick(ngx_event_t *ev)
{
    u_char                       buf[64];
    ngx_uint_t                   seen, next_seen;
    ngx_queue_t                 *q, *next;
    ngx_http_request_t          *r;
    ngx_http_agentgov_hold_t     h;
    ngx_http_agentgov_parked_t  *pk;

    if (ngx_queue_empty(&ngx_http_agentgov_parked)) {
        return;
    }

    seen = ngx_http_agentgov_store_hold_counter(ngx_http_agentgov_hold_store);

    if (seen == ngx_http_agentgov_parked_seen) {
        goto next;
    }

    /* the holds closed since the last look: wake those parked here */
    next_seen = ngx_http_agentgov_store_hold_closed(
                    ngx_http_agentgov_hold_store, ngx_http_agentgov_parked_seen,
                    ngx_http_agentgov_hold_closed, NULL);

    if (next_seen != NGX_HTTP_AGENTGOV_CLOSED_LOST) {
        ngx_http_agentgov_parked_seen = next_seen;

    } else {
        /* more closed than the store remembers: look at every one */
        ngx_http_agentgov_parked_seen = seen;

        for (q = ngx_queue_head(&ngx_http_agentgov_parked);
             q != ngx_queue_sentinel(&ngx_http_agentgov_parked);
             q = next)
        {
            next = ngx_queue_next(q);
            pk = ngx_queue_data(q, ngx_http_agentgov_parked_t, queue);

            if (ngx_http_agentgov_store_hold_get(ngx_http_agentgov_hold_store,
                                                 (ag_str_t) {
                                                     (const char *)
                                                     pk->ctx->approval_id,
                                                     AG_TASK_ID_LEN },
                                                 &h, buf, 0)
                == NGX_AGENTGOV_STORE_OK
                && h.votes.state == AG_HOLD_PENDING)
            {
                continue;
            }

            r = pk->r;
            ngx_http_agentgov_hold_unpark(pk);
            ngx_http_agentgov_hold_wake(r);
        }
    }

next:

    if (!ngx_queue_empty(&ngx_http_agentgov_parked) && !ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_AGENTGOV_HOLD_TICK);
    }
}


/* A hold that closed: if it is parked here, wake it. */

static void
ngx_http_agentgov_hold_closed(void *data, ag_str_t id)
{
    ngx_str_t                    key;
    ngx_http_request_t          *r;
    ngx_http_agentgov_parked_t  *pk;

    key.data = (u_char *) id.p;
    key.len = id.len;

    pk = (ngx_http_agentgov_parked_t *)
             ngx_str_rbtree_lookup(&ngx_http_agentgov_parked_tree, &key,
                                   ngx_crc32_short(key.data, key.len));

    if (pk == NULL || pk->r == NULL) {
        return;
    }

    r = pk->r;
    ngx_http_agentgov_hold_unpark(pk);
    ngx_http_agentgov_hold_wake(r);
}


static void
ngx_http_agentgov_hold_unpark(ngx_http_agentgov_parked_t *pk)
{
    ngx_queue_remove(&pk->queue);
    ngx_rbtree_delete(&ngx_http_agentgov_parked_tree, &pk->sn.node);
    pk->r = NULL;
}


/*
 * A decision taken in this worker: look at its parked requests at the end
 * of this event loop iteration rather than at the next tick (the other
 * workers see the counter at theirs).
 */

void
ngx_http_agentgov_hold_poke(void)
{
    if (!ngx_queue_empty(&ngx_http_agentgov_parked)
        && !ngx_http_agentgov_hold_ev.posted)
    {
        ngx_post_event(&ngx_http_agentgov_hold_ev, &ngx_posted_events);
    }
}


/* The request ends, however: a hold still pending is cancelled. */

static void
ngx_http_agentgov_hold_cleanup(void *data)
{
    ngx_http_agentgov_parked_t *pk = data;

    ngx_int_t                 result;
    ngx_http_agentgov_ctx_t  *ctx;

    ctx = pk->ctx;

    if (pk->r) {
        ngx_http_agentgov_hold_unpark(pk);
    }

    if (!ctx->held) {
        return;
    }

    ctx->held = 0;

    (void) ngx_http_agentgov_store_hold_update(ngx_http_agentgov_hold_store,
                                    (ag_str_t) { (const char *)
                                                 ctx->approval_id,
                                                 AG_TASK_ID_LEN },
                                    ngx_http_agentgov_hold_close,
                                    (void *) AG_HOLD_CANCELLED, ngx_time(),
                                    &result);

    if (result) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "agentgov: approval %*s cancelled: the client went "
                      "away", (size_t) AG_TASK_ID_LEN, ctx->approval_id);

        ngx_http_agentgov_audit_approval(pk->request, ctx, "cancelled", NULL,
                                         NULL);
    }
}


/*
 * The access handler's re-entry for a held call: the outcome. NGX_OK when
 * approved (the call goes on), else a refusal through ref (NGX_DECLINED).
 */

ngx_int_t
ngx_http_agentgov_hold_outcome(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    u_char                     buf[64];
    ngx_int_t                  result;
    ngx_http_agentgov_hold_t   h;
    ngx_http_agentgov_store_t *s;
    ag_str_t                   id;

    s = ngx_http_agentgov_store(r);

    id.p = (const char *) ctx->approval_id;
    id.len = AG_TASK_ID_LEN;

    ctx->held = 0;

    if (ctx->parked && ctx->parked->r) {
        ngx_http_agentgov_hold_unpark(ctx->parked);
    }

    if (ngx_http_agentgov_store_hold_get(s, id, &h, buf, 0)
        != NGX_AGENTGOV_STORE_OK)
    {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "gateway_error", "the hold was "
                                         "lost");
    }

    if (h.votes.state == AG_HOLD_PENDING) {
        /* the deadline: expire it, unless a decision just came */
        (void) ngx_http_agentgov_store_hold_update(s, id,
                                               ngx_http_agentgov_hold_close,
                                               (void *) AG_HOLD_EXPIRED,
                                               ngx_time(), &result);
        if (result) {
            ngx_http_agentgov_audit_approval(r, ctx, "expired", NULL, NULL);
        }

        (void) ngx_http_agentgov_store_hold_get(s, id, &h, buf, 0);
    }

    switch (h.votes.state) {

    case AG_HOLD_APPROVED:
        ngx_str_set(&ctx->decision_name, "approved");
        ctx->approved = 1;
        return NGX_OK;

    case AG_HOLD_DENIED:
        ngx_str_set(&ctx->decision_name, "denied");
        (void) ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                         "approval_denied", "an approver "
                                         "denied the call");
        ref->decision = "denied";
        return NGX_DECLINED;

    case AG_HOLD_CANCELLED:
        /* its task ended, or its agent was suspended, while it waited */
        ngx_str_set(&ctx->decision_name, "cancelled");
        ngx_http_agentgov_audit_approval(r, ctx, "cancelled", NULL, NULL);

        if (ngx_http_agentgov_store_agent_check(s, ctx->call.agent)
            != NGX_AGENTGOV_STORE_OK)
        {
            (void) ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                             "agent_suspended", "the agent "
                                             "was suspended while the call "
                                             "waited");
        } else {
            (void) ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                             "task_revoked", "the task "
                                             "ended while the call waited");
        }

        ref->decision = "cancelled";
        return NGX_DECLINED;

    default:
        ngx_str_set(&ctx->decision_name, "expired");
        (void) ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                         "approval_expired", "no decision "
                                         "came in time");
        ref->decision = "expired";
        return NGX_DECLINED;
    }
}


/* --- Agent-Approval on an approved call's response --------------------------- */

static ngx_int_t
ngx_http_agentgov_approval_header_filter(ngx_http_request_t *r)
{
    ngx_table_elt_t          *h;
    ngx_http_agentgov_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_agentgov_module);

    if (r == r->main && ctx && ctx->approval.len && ctx->approved) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Agent-Approval");
        h->value = ctx->approval;
    }

    return ngx_http_next_header_filter(r);
}


ngx_int_t
ngx_http_agentgov_hold_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_agentgov_approval_header_filter;

    return NGX_OK;
}
