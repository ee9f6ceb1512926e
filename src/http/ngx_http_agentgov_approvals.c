/*
 * The approval API (SPEC section 6): list and read holds, and decide them.
 * The control API (ngx_http_agentgov_api.c) routes here with the caller's
 * identity established; who may decide a hold is the engine's (ag_hold.c),
 * run under the store's lock so that the first decision wins.
 */

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_audit.h"
#include "ag_hold.h"
#include "ag_json.h"


#define NGX_HTTP_AGENTGOV_APPROVALS_MAX   1000


typedef struct {
    ngx_http_request_t              *r;
    ngx_http_agentgov_main_conf_t   *amcf;
    ag_identity_t                   *id;
    ngx_uint_t                       all;        /* admin or auditor */
    json_t                          *items;
    ngx_uint_t                       failed;
} ngx_http_agentgov_approvals_list_t;


typedef struct {
    ngx_http_agentgov_main_conf_t   *amcf;
    ag_identity_t                   *id;
    ag_str_t                         who;
    ngx_uint_t                       approve;
    ngx_str_t                        reason;
    int64_t                          now;
    ag_hold_result_t                 result;
} ngx_http_agentgov_approvals_vote_t;


static ngx_int_t ngx_http_agentgov_hold_send(ngx_http_request_t *r,
    ngx_pool_cleanup_t *cln, const ngx_http_agentgov_hold_t *h);


/* The hold's rules, from the policy by id; n gets how many were found. */

static void
ngx_http_agentgov_hold_rules(const ag_policy_t *p, ag_str_t ids,
    const ag_rule_t **rules, size_t *n)
{
    const char  *s, *last, *comma;

    *n = 0;
    s = ids.p;
    last = ids.p + ids.len;

    while (s < last && *n < AG_MAX_HOLD_RULES) {
        comma = (const char *) ngx_strlchr((u_char *) s, (u_char *) last,
                                           ',');
        if (comma == NULL) {
            comma = last;
        }

        rules[*n] = ag_policy_rule(p, s, comma - s);
        if (rules[*n]) {
            (*n)++;
        }

        s = comma + 1;
    }
}


static json_t *
ngx_http_agentgov_hold_json(const ngx_http_agentgov_hold_t *h)
{
    char         t[32];
    size_t       i;
    json_t      *o, *votes, *action;
    const char  *what;
    ag_str_t const  *m;

#define hs(i)  h->str[i].p ? json_stringn(h->str[i].p, h->str[i].len)       \
                           : json_string("")

    m = &h->str[NGX_HTTP_AGENTGOV_H_METHOD];

    if (m->p && ngx_strlchr((u_char *) m->p, (u_char *) m->p + m->len, '/')) {
        /* an MCP call: {mcp_method, mcp_tool | mcp_resource | mcp_prompt} */
        what = (m->len == sizeof("resources/read") - 1
                && ngx_strncmp(m->p, "resources/read", m->len) == 0)
               ? "mcp_resource"
               : (m->len == sizeof("prompts/get") - 1
                  && ngx_strncmp(m->p, "prompts/get", m->len) == 0)
                 ? "mcp_prompt" : "mcp_tool";

        action = json_pack("{s:o}", "mcp_method",
                           hs(NGX_HTTP_AGENTGOV_H_METHOD));

        if (action && h->str[NGX_HTTP_AGENTGOV_H_PATH].len) {
            (void) json_object_set_new(action, what,
                                       hs(NGX_HTTP_AGENTGOV_H_PATH));
        }

    } else {
        action = json_pack("{s:o, s:o, s:o}",
                           "method", hs(NGX_HTTP_AGENTGOV_H_METHOD),
                           "host", hs(NGX_HTTP_AGENTGOV_H_HOST),
                           "path", hs(NGX_HTTP_AGENTGOV_H_PATH));
    }

    o = json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                  "id", hs(NGX_HTTP_AGENTGOV_H_ID),
                  "state", ag_hold_state_name(h->votes.state),
                  "agent", hs(NGX_HTTP_AGENTGOV_H_AGENT),
                  "owner", hs(NGX_HTTP_AGENTGOV_H_OWNER),
                  "task", hs(NGX_HTTP_AGENTGOV_H_TASK),
                  "intent", hs(NGX_HTTP_AGENTGOV_H_INTENT),
                  "chain", hs(NGX_HTTP_AGENTGOV_H_CHAIN),
                  "tool", hs(NGX_HTTP_AGENTGOV_H_TOOL),
                  "action", action ? action : json_null(),
                  "rules", hs(NGX_HTTP_AGENTGOV_H_RULES),
                  "reason", hs(NGX_HTTP_AGENTGOV_H_REASON));

#undef hs

    if (o == NULL) {
        return NULL;
    }

    ag_time_rfc3339(h->requested, t, sizeof(t));
    json_object_set_new(o, "requested_at", json_string(t));
    ag_time_rfc3339(h->expires, t, sizeof(t));
    json_object_set_new(o, "expires_at", json_string(t));

    if (h->closed) {
        ag_time_rfc3339(h->closed, t, sizeof(t));
        json_object_set_new(o, "decided_at", json_string(t));
    }

    /* first what the rules read, then the beginning of the body */
    json_object_set_new(o, "values",
        h->str[NGX_HTTP_AGENTGOV_H_VALUES].len
        ? json_loadb(h->str[NGX_HTTP_AGENTGOV_H_VALUES].p,
                     h->str[NGX_HTTP_AGENTGOV_H_VALUES].len, 0, NULL)
        : json_object());
    json_object_set_new(o, "preview",
        json_stringn(h->str[NGX_HTTP_AGENTGOV_H_PREVIEW].len
                     ? h->str[NGX_HTTP_AGENTGOV_H_PREVIEW].p : "",
                     h->str[NGX_HTTP_AGENTGOV_H_PREVIEW].len));

    if (h->str[NGX_HTTP_AGENTGOV_H_DECISION].len) {
        json_object_set_new(o, "decision_reason",
            json_stringn(h->str[NGX_HTTP_AGENTGOV_H_DECISION].p,
                         h->str[NGX_HTTP_AGENTGOV_H_DECISION].len));
    }

    votes = json_array();

    for (i = 0; votes && i < h->votes.nvotes; i++) {
        json_array_append_new(votes,
            json_pack("{s:s, s:s}", "by", h->votes.votes[i].who,
                      "decision", h->votes.votes[i].approve ? "approve"
                                                            : "deny"));
    }

    json_object_set_new(o, "decisions", votes ? votes : json_array());

    return o;
}


/* Who sees a hold: admins and auditors all, others those they may decide. */

static ngx_uint_t
ngx_http_agentgov_hold_visible(ngx_http_agentgov_main_conf_t *amcf,
    ag_identity_t *id, ngx_uint_t all, const ngx_http_agentgov_hold_t *h)
{
    size_t            n;
    const ag_rule_t  *rules[AG_MAX_HOLD_RULES];

    if (all) {
        return 1;
    }

    ngx_http_agentgov_hold_rules(amcf->policy, h->str[NGX_HTTP_AGENTGOV_H_RULES],
                                 rules, &n);

    /* escalation counts: those who may decide later may look now */
    return ag_hold_may_decide(amcf->policy, rules, n, id, 0, ngx_time()) != 0;
}


static void
ngx_http_agentgov_approvals_item(void *data, const ngx_http_agentgov_hold_t *h)
{
    ngx_http_agentgov_approvals_list_t *l = data;

    json_t  *o;

    if (!ngx_http_agentgov_hold_visible(l->amcf, l->id, l->all, h)) {
        return;
    }

    o = ngx_http_agentgov_hold_json(h);

    if (o == NULL || json_array_append_new(l->items, o) != 0) {
        l->failed = 1;
    }
}


/* Under the store's lock: copy what the record of an orphaned hold needs. */

static void
ngx_http_agentgov_orphan_item(void *data, const ngx_http_agentgov_hold_t *h)
{
    ngx_array_t *a = data;

    ngx_uint_t       i;
    ag_audit_rec_t  *rec;
    ag_str_t        *f[5];
    ngx_uint_t       k[5] = { NGX_HTTP_AGENTGOV_H_ID, NGX_HTTP_AGENTGOV_H_AGENT,
                              NGX_HTTP_AGENTGOV_H_TASK,
                              NGX_HTTP_AGENTGOV_H_TOOL,
                              NGX_HTTP_AGENTGOV_H_OWNER };

    rec = ngx_array_push(a);
    if (rec == NULL) {
        return;
    }

    ngx_memzero(rec, sizeof(ag_audit_rec_t));

    f[0] = &rec->approval_id;
    f[1] = &rec->agent;
    f[2] = &rec->task;
    f[3] = &rec->tool;
    f[4] = &rec->owner;

    for (i = 0; i < 5; i++) {
        f[i]->p = ngx_pnalloc(a->pool, h->str[k[i]].len + 1);
        if (f[i]->p == NULL) {
            a->nelts--;
            return;
        }

        ngx_memcpy((u_char *) f[i]->p, h->str[k[i]].p, h->str[k[i]].len);
        f[i]->len = h->str[k[i]].len;
    }
}


/*
 * The audit records of holds cancelled because their worker died with the
 * request (nobody else saw them go): written by whoever lists holds.
 */

static void
ngx_http_agentgov_approvals_orphans(ngx_http_request_t *r,
    ngx_http_agentgov_store_t *s)
{
    ngx_uint_t       i;
    ngx_array_t     *a;
    ag_audit_rec_t  *rec;

    a = ngx_array_create(r->pool, 4, sizeof(ag_audit_rec_t));
    if (a == NULL) {
        return;
    }

    ngx_http_agentgov_store_hold_unrecorded(s, ngx_http_agentgov_orphan_item,
                                            a);

    rec = a->elts;

    for (i = 0; i < a->nelts; i++) {
        rec[i].event = "approval";
        rec[i].decision.p = "cancelled";
        rec[i].decision.len = sizeof("cancelled") - 1;
        rec[i].approval_reason.p = "the worker holding the call is gone";
        rec[i].approval_reason.len = ngx_strlen(rec[i].approval_reason.p);
        rec[i].decided_at = ngx_time();

        (void) ngx_http_agentgov_audit_event(r, &rec[i]);
    }
}


/* GET v1/approvals?state= and GET v1/approvals/<id> */

ngx_int_t
ngx_http_agentgov_approvals_get(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *hold_id, ag_identity_t *id,
    ngx_uint_t all)
{
    int                                  state;
    json_t                              *out;
    ngx_str_t                            name, v[1];
    ngx_uint_t                           i;
    ag_str_t                             key;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_agentgov_hold_t             h;
    ngx_http_agentgov_store_t           *s;
    ngx_http_agentgov_approvals_list_t   l;

    static ngx_str_t  keys[] = { ngx_string("state") };

    s = ngx_http_agentgov_store(r);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&l, sizeof(l));
    l.r = r;
    l.amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    l.id = id;
    l.all = all;

    if (hold_id->len) {
        u_char  *buf = ngx_pnalloc(r->pool, NGX_HTTP_AGENTGOV_HOLD_BUF);

        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        key.p = (const char *) hold_id->data;
        key.len = hold_id->len;

        if (ngx_http_agentgov_store_hold_get(s, key, &h, buf,
                                             NGX_HTTP_AGENTGOV_HOLD_BUF)
            != NGX_AGENTGOV_STORE_OK
            || (ctx->agent
                ? (h.str[NGX_HTTP_AGENTGOV_H_AGENT].len
                   != ngx_strlen(ctx->agent->name)
                   || ngx_strncmp(h.str[NGX_HTTP_AGENTGOV_H_AGENT].p,
                                  ctx->agent->name,
                                  h.str[NGX_HTTP_AGENTGOV_H_AGENT].len) != 0)
                : !ngx_http_agentgov_hold_visible(l.amcf, id, all, &h)))
        {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                     NGX_HTTP_NOT_FOUND,
                                                     "not_found", "no such "
                                                     "approval");
        }

        return ngx_http_agentgov_hold_send(r, cln, &h);
    }

    if (ngx_http_agentgov_query(r, keys, 1, v, &name) != NGX_OK) {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_BAD_REQUEST,
                                                 "bad_request", "unknown or "
                                                 "repeated query parameter "
                                                 "(state)");
    }

    state = -1;

    if (v[0].len) {
        for (i = AG_HOLD_PENDING; i <= AG_HOLD_CANCELLED; i++) {
            if (v[0].len == ngx_strlen(ag_hold_state_name(i))
                && ngx_strncmp(v[0].data, ag_hold_state_name(i), v[0].len)
                   == 0)
            {
                state = (int) i;
            }
        }

        if (state < 0) {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                     NGX_HTTP_BAD_REQUEST,
                                                     "bad_request", "state: "
                                                     "pending, approved, "
                                                     "denied, expired or "
                                                     "cancelled");
        }
    }

    out = json_object();
    l.items = json_array();

    if (out == NULL || l.items == NULL
        || json_object_set_new(out, "items", l.items) != 0)
    {
        json_decref(out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = out;

    ngx_http_agentgov_store_hold_list(s, state,
                                      NGX_HTTP_AGENTGOV_APPROVALS_MAX,
                                      ngx_http_agentgov_approvals_item, &l);

    ngx_http_agentgov_approvals_orphans(r, s);

    if (l.failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_agentgov_send_json(r, NGX_HTTP_OK, out);
}


/* Under the store's lock: one person's decision on the hold. */

static ngx_int_t
ngx_http_agentgov_approvals_decide(void *data,
    const ngx_http_agentgov_hold_t *h, ag_hold_t *votes, u_char *reason,
    size_t *reason_len)
{
    ngx_http_agentgov_approvals_vote_t *v = data;

    char              owner[AG_HOLD_WHO_MAX];
    size_t            n, len;
    const ag_rule_t  *rules[AG_MAX_HOLD_RULES];

    ngx_http_agentgov_hold_rules(v->amcf->policy,
                                 h->str[NGX_HTTP_AGENTGOV_H_RULES], rules, &n);

    /* the agent's owner, a group name, NUL-terminated for the engine */
    len = ngx_min(h->str[NGX_HTTP_AGENTGOV_H_OWNER].len, sizeof(owner) - 1);
    ngx_memcpy(owner, h->str[NGX_HTTP_AGENTGOV_H_OWNER].p, len);
    owner[len] = '\0';

    v->result = ag_hold_decide(v->amcf->policy, votes, rules, n, v->id,
                               v->who, v->approve, len ? owner : NULL,
                               h->requested, v->now);

    if ((v->result == AG_HOLD_NOW_APPROVED || v->result == AG_HOLD_NOW_DENIED)
        && reason && v->reason.len)
    {
        *reason_len = ngx_min(v->reason.len, 512);
        ngx_memcpy(reason, v->reason.data, *reason_len);
    }

    return NGX_OK;
}


/* POST v1/approvals/<id> {"decision": "approve" | "deny", "reason": "..."} */

ngx_int_t
ngx_http_agentgov_approvals_post(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_str_t *hold_id, ag_identity_t *id,
    ngx_str_t *who, json_t *body)
{
    u_char                              *buf;
    json_t                              *d, *reason;
    ngx_int_t                            result;
    ag_str_t                             key;
    ngx_pool_cleanup_t                  *cln;
    ngx_http_agentgov_hold_t             h;
    ngx_http_agentgov_store_t           *s;
    ngx_http_agentgov_approvals_vote_t   v;
    ngx_http_agentgov_store_rc_e         rc;

    s = ngx_http_agentgov_store(r);

    d = body ? json_object_get(body, "decision") : NULL;
    reason = body ? json_object_get(body, "reason") : NULL;

    if (!json_is_string(d)
        || (ngx_strcmp(json_string_value(d), "approve") != 0
            && ngx_strcmp(json_string_value(d), "deny") != 0)
        || (reason && !json_is_string(reason))
        || json_object_size(body) != (size_t) (1 + (reason != NULL)))
    {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_BAD_REQUEST,
                                                 "bad_request", "expected "
                                                 "{\"decision\": \"approve\" "
                                                 "| \"deny\", \"reason\": "
                                                 "\"...\"}");
    }

    ngx_memzero(&v, sizeof(v));
    v.amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    v.id = id;
    v.who.p = (const char *) who->data;
    v.who.len = who->len;
    v.approve = ngx_strcmp(json_string_value(d), "approve") == 0;
    v.now = ngx_time();

    if (reason) {
        v.reason.data = (u_char *) json_string_value(reason);
        v.reason.len = json_string_length(reason);
    }

    key.p = (const char *) hold_id->data;
    key.len = hold_id->len;

    rc = ngx_http_agentgov_store_hold_update(s, key,
                                             ngx_http_agentgov_approvals_decide,
                                             &v, v.now, &result);

    if (rc == NGX_AGENTGOV_STORE_FULL) {
        return ngx_http_agentgov_refuse_content(r, ctx,
                                                 NGX_HTTP_SERVICE_UNAVAILABLE,
                                                 "gateway_error", "the "
                                                 "decision cannot be kept "
                                                 "(agentgov_zone full)");
    }

    if (rc != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_NOT_FOUND,
                                                 "not_found", "no such "
                                                 "approval");
    }

    if (v.result == AG_HOLD_NOW_APPROVED || v.result == AG_HOLD_NOW_DENIED) {
        ngx_http_agentgov_hold_poke();
    }

    switch (v.result) {

    case AG_HOLD_NOT_APPROVER:
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_FORBIDDEN,
                                                 "denied", "you are not an "
                                                 "approver of this hold's "
                                                 "rules (and an agent never "
                                                 "is)");

    case AG_HOLD_CONFLICT:
    case AG_HOLD_TOO_MANY:
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_CONFLICT,
                                                 "conflict", "the hold is "
                                                 "closed, or you decided it "
                                                 "already");
    default:
        break;
    }

    buf = ngx_pnalloc(r->pool, NGX_HTTP_AGENTGOV_HOLD_BUF);
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (buf == NULL || cln == NULL
        || ngx_http_agentgov_store_hold_get(s, key, &h, buf,
                                            NGX_HTTP_AGENTGOV_HOLD_BUF)
           != NGX_AGENTGOV_STORE_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the record names the hold's call: the ctx of this API request
       stands in for it */
    ngx_memcpy(ctx->approval_id, hold_id->data,
               ngx_min(hold_id->len, AG_TASK_ID_LEN));

    ngx_http_agentgov_audit_approval(r, ctx,
                                     v.result == AG_HOLD_NOW_APPROVED
                                     ? "approved"
                                     : v.result == AG_HOLD_NOW_DENIED
                                       ? "denied" : "hold",
                                     who, v.reason.len ? &v.reason : NULL);

    return ngx_http_agentgov_hold_send(r, cln, &h);
}


/* One hold as JSON, owned by the request through cln. */

static ngx_int_t
ngx_http_agentgov_hold_send(ngx_http_request_t *r, ngx_pool_cleanup_t *cln,
    const ngx_http_agentgov_hold_t *h)
{
    json_t  *out;

    out = ngx_http_agentgov_hold_json(h);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = out;

    return ngx_http_agentgov_send_json(r, NGX_HTTP_OK, out);
}
