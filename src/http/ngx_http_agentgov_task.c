/*
 * The task of a tool call (SPEC section 4 and the check order of section 5):
 * the agent is not suspended, its Agent-Task token is the gateway's, bound to
 * this agent (and certificate), the task is live in the store right now, and
 * the tool is in the task. After the decision, the call spends budget.
 */

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_tokcache.h"


#define NGX_HTTP_AGENTGOV_TASK_BUF         8192
#define NGX_HTTP_AGENTGOV_TASKCACHE_SLOTS  1024


/*
 * Verified task tokens, per worker: verifying one (MAC and strict claims)
 * costs microseconds, and an agent sends the same token on every call. A
 * token's MAC and claims cannot change; whether its task is still live is
 * asked of the store on every call, hit or miss.
 */
static ag_tokcache_t  *ngx_http_agentgov_taskcache;


static ngx_int_t ngx_http_agentgov_task_keep(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, u_char *buf);
static ngx_int_t ngx_http_agentgov_task_claim(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ag_str_t agent, ag_task_t *claimed,
    ngx_http_agentgov_refusal_t *ref);
static ngx_int_t ngx_http_agentgov_task_live(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_store_rc_e rc, u_char *buf,
    ngx_http_agentgov_refusal_t *ref);
static ag_task_token_status_t ngx_http_agentgov_task_token(
    ngx_http_request_t *r, ngx_table_elt_t *h, ngx_http_agentgov_ctx_t *ctx,
    ag_task_t *claimed);


ngx_int_t
ngx_http_agentgov_task_check(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    u_char                          buf[NGX_HTTP_AGENTGOV_TASK_BUF];
    ag_str_t                        agent;
    ngx_int_t                       claim;
    ag_task_t                       claimed;
    ngx_http_agentgov_store_t      *store;
    ngx_http_agentgov_store_rc_e    rc;

    store = ngx_http_agentgov_store(r);

    agent.p = ctx->agent->name;
    agent.len = ngx_strlen(ctx->agent->name);

    claim = ngx_http_agentgov_task_claim(r, ctx, agent, &claimed, ref);

    if (claim == NGX_DECLINED) {
        /* the kill switch answers before anything the agent presents */
        if (ngx_http_agentgov_store_agent_check(store, agent)
            == NGX_AGENTGOV_STORE_SUSPENDED)
        {
            return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                             "agent_suspended",
                                             "the agent is suspended");
        }

        return NGX_DECLINED;
    }

    if (claim != NGX_OK) {
        return NGX_ERROR;
    }

    /* not suspended, and the task live, right now, on every worker: one
       look at the store */

    rc = ngx_http_agentgov_store_task_use(store, agent, claimed.id,
                                          &ctx->task, buf,
                                          NGX_HTTP_AGENTGOV_TASK_BUF,
                                          ngx_time());

    if (rc == NGX_AGENTGOV_STORE_SUSPENDED) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                         "agent_suspended",
                                         "the agent is suspended");
    }

    return ngx_http_agentgov_task_live(r, ctx, rc, buf, ref);
}


/*
 * The task token the call presents, verified (or from the cache) and bound
 * to this agent: NGX_DECLINED with the refusal in ref.
 */

static ngx_int_t
ngx_http_agentgov_task_claim(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ag_str_t agent, ag_task_t *claimed,
    ngx_http_agentgov_refusal_t *ref)
{
    size_t                          len;
    ngx_uint_t                      n;
    ngx_table_elt_t                *h;
    ngx_pool_cleanup_t             *cln;
    ag_task_token_status_t          st;

    h = ngx_http_agentgov_find_header(r, "Agent-Task", sizeof("Agent-Task") - 1,
                                      &n);
    if (n > 1) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_BAD_REQUEST,
                                         "bad_request",
                                         "more than one Agent-Task "
                                         "header");
    }

    if (h == NULL) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "no_task", "no task: declare "
                                         "one at /agentgov/v1/tasks and "
                                         "send its token in Agent-Task");
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    st = ngx_http_agentgov_task_token(r, h, ctx, claimed);

    if (st == AG_TASK_TOKEN_EXPIRED) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "task_expired",
                                         "the task has expired");
    }

    if (st != AG_TASK_TOKEN_OK) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "no_task",
                                         "Agent-Task is not a task token "
                                         "of this gateway");
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = ctx->task_claims;

    /* bound to the agent, and under mTLS to its certificate (RFC 8705) */

    len = ctx->cnf[0] ? sizeof(ctx->cnf) : 0;

    if (claimed->agent.len != agent.len
        || ngx_strncmp(claimed->agent.p, agent.p, agent.len) != 0
        || claimed->cnf.len != len
        || (len && ngx_strncmp(claimed->cnf.p, ctx->cnf, len) != 0))
    {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "no_task",
                                         "the task token belongs to "
                                         "another identity");
    }

    return NGX_OK;
}


/* The task the store gave (rc): live, or the refusal that says why not. */

static ngx_int_t
ngx_http_agentgov_task_live(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_store_rc_e rc, u_char *buf,
    ngx_http_agentgov_refusal_t *ref)
{
    if (rc == NGX_AGENTGOV_STORE_NOT_FOUND) {
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "task_revoked",
                                         "the task is no longer live");
    }

    if (rc != NGX_AGENTGOV_STORE_OK) {
        return NGX_ERROR;
    }

    switch (ctx->task.state) {

    case AG_TASK_LIVE:
        break;

    case AG_TASK_EXPIRED:
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "task_expired",
                                         "the task has expired");

    case AG_TASK_ENDED:
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "task_revoked",
                                         "the task has ended");

    default:
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "task_revoked",
                                         "the task was revoked");
    }

    /* its strings at their size: a held call keeps them while it waits */
    if (ngx_http_agentgov_task_keep(r, ctx, buf) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->has_task = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_task_keep(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, u_char *buf)
{
    u_char      *p, *end;
    ngx_uint_t   i;
    ag_str_t    *s[] = { &ctx->task.id, &ctx->task.agent, &ctx->task.owner,
                         &ctx->task.intent, &ctx->task.tools,
                         &ctx->task.parent, &ctx->task.chain,
                         &ctx->task.cnf, &ctx->task.purpose };

    end = buf;

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        p = (u_char *) s[i]->p;

        if (p >= buf && p + s[i]->len <= buf + NGX_HTTP_AGENTGOV_TASK_BUF
            && p + s[i]->len > end)
        {
            end = p + s[i]->len;
        }
    }

    ctx->task_buf = ngx_pnalloc(r->pool, end - buf + 1);
    if (ctx->task_buf == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->task_buf, buf, end - buf);

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        p = (u_char *) s[i]->p;

        if (p >= buf && p <= end) {
            s[i]->p = (const char *) ctx->task_buf + (p - buf);
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_agentgov_task_scope(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    if (ag_task_has_tool(ctx->task.tools, ctx->tool->name,
                         ngx_strlen(ctx->tool->name)))
    {
        return NGX_OK;
    }

    return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                     "out_of_scope",
                                     "the tool is not in the task");
}


/* Only a forwarded call spends budget: this runs after an allow. */

ngx_int_t
ngx_http_agentgov_task_spend(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_refusal_t *ref)
{
    int64_t                         retry;
    ngx_time_t                     *tp;
    const ag_intent_t              *intent;
    ngx_http_agentgov_store_rc_e    rc;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    intent = ag_policy_intent(amcf->policy, ctx->task.intent.p,
                              ctx->task.intent.len);

    if (intent == NULL) {
        /* the intent left the policy since the task was declared */
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_FORBIDDEN,
                                         "denied", "the task's intent "
                                         "is no longer in the policy");
    }

    if (intent->budget_calls == 0 && intent->budget_rate_n == 0) {
        return NGX_OK;
    }

    tp = ngx_timeofday();
    retry = 0;

    rc = ngx_http_agentgov_store_task_spend(ngx_http_agentgov_store(r),
                                            ctx->task.id, intent,
                                            (int64_t) tp->sec * 1000 + tp->msec,
                                            &retry);

    switch (rc) {

    case NGX_AGENTGOV_STORE_OK:
        return NGX_OK;

    case NGX_AGENTGOV_STORE_EXHAUSTED:
        (void) ngx_http_agentgov_refusal(ref, NGX_HTTP_TOO_MANY_REQUESTS,
                                         "budget_exceeded",
                                         "the task's budget is spent");
        ref->retry_after = retry > 0 ? retry : 1;
        return NGX_DECLINED;

    case NGX_AGENTGOV_STORE_NOT_LIVE:
    case NGX_AGENTGOV_STORE_NOT_FOUND:
        return ngx_http_agentgov_refusal(ref, NGX_HTTP_UNAUTHORIZED,
                                         "task_revoked",
                                         "the task is no longer live");

    default:
        return NGX_ERROR;
    }
}


/*
 * The token's task, from the cache or verified now. On a hit only what the
 * call needs of the token is read back (id, agent, certificate binding):
 * the task itself comes from the store.
 */

static ag_task_token_status_t
ngx_http_agentgov_task_token(ngx_http_request_t *r, ngx_table_elt_t *h,
    ngx_http_agentgov_ctx_t *ctx, ag_task_t *claimed)
{
    char                            err[256];
    json_t                         *c, *v;
    int64_t                         now;
    ag_task_token_status_t          st;
    ngx_http_agentgov_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    now = ngx_time();

    c = NULL;

    if (ngx_http_agentgov_taskcache) {
        c = ag_tokcache_get(ngx_http_agentgov_taskcache,
                            (const char *) h->value.data, h->value.len, now);
    }

    if (c != NULL) {
        ngx_memzero(claimed, sizeof(ag_task_t));

        v = json_object_get(c, "tid");
        claimed->id.p = json_string_value(v);
        claimed->id.len = json_string_length(v);

        v = json_object_get(c, "sub");
        claimed->agent.p = json_string_value(v);
        claimed->agent.len = json_string_length(v);

        v = json_object_get(c, "_cnf");
        claimed->cnf.p = json_string_value(v);
        claimed->cnf.len = v ? json_string_length(v) : 0;

        ctx->task_claims = json_incref(c);

        return AG_TASK_TOKEN_OK;
    }

    st = ag_task_token_verify(amcf->task_key, (const char *) amcf->issuer.data,
                              (const char *) h->value.data, h->value.len, now,
                              &ctx->task_claims, claimed, err, sizeof(err));

    if (st != AG_TASK_TOKEN_OK) {
        if (st != AG_TASK_TOKEN_EXPIRED) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "agentgov: task token refused: %s", err);
        }

        return st;
    }

    if (ngx_http_agentgov_taskcache) {
        /* valid while exp > now, as the verifier says */
        ag_tokcache_put(ngx_http_agentgov_taskcache,
                        (const char *) h->value.data, h->value.len,
                        ctx->task_claims, INT64_MIN / 2, claimed->expires - 1);
    }

    return AG_TASK_TOKEN_OK;
}


ngx_int_t
ngx_http_agentgov_task_init_process(ngx_cycle_t *cycle)
{
    ngx_http_agentgov_taskcache =
                        ag_tokcache_new(NGX_HTTP_AGENTGOV_TASKCACHE_SLOTS);

    if (ngx_http_agentgov_taskcache == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "agentgov: no memory for the task token cache");
    }

    return NGX_OK;
}


void
ngx_http_agentgov_task_exit_process(ngx_cycle_t *cycle)
{
    ag_tokcache_free(ngx_http_agentgov_taskcache);
    ngx_http_agentgov_taskcache = NULL;
}


