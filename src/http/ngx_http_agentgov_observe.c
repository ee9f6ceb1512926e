/*
 * What operators and auditors read (SPEC sections 2 and 8): the metrics in
 * Prometheus text, health, the audit log newest first, and the latest
 * signed checkpoint. The control API routes here (ngx_http_agentgov_api.c).
 *
 * Figures come from the store as one copy taken under its lock. The audit
 * log is read backwards from its end with a bound on the bytes read, never
 * whole: a request that scans that much without filling its limit gets a
 * cursor to go on from. Full verification is the CLI's job.
 */

#include <fcntl.h>

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_audit.h"


#define NGX_HTTP_AGENTGOV_AUDIT_LIMIT       100
#define NGX_HTTP_AGENTGOV_AUDIT_LIMIT_MAX   1000
#define NGX_HTTP_AGENTGOV_AUDIT_SCAN        (16 * 1024 * 1024)

/* a full zone: health answers 503 (SPEC section 2) */
#define NGX_HTTP_AGENTGOV_ZONE_FULL         0.99


typedef struct {
    ngx_http_request_t              *r;
    json_t                          *items;
    ngx_uint_t                       failed;
} ngx_http_agentgov_audit_list_t;


static u_char *ngx_http_agentgov_metrics_label(u_char *p, u_char *last,
    u_char *s, size_t len);
static int ngx_http_agentgov_audit_item(void *data, const char *line,
    size_t len);


static ngx_str_t  ngx_http_agentgov_text_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

static ngx_str_t  ngx_http_agentgov_json_type =
    ngx_string("application/json");

static const char  *ngx_http_agentgov_decision_names[] = {
    "allow", "deny", "hold", "monitor-deny", "monitor-hold", "approved",
    "denied", "expired", "cancelled"
};


/* --- GET /agentgov/metrics ------------------------------------------------ */

ngx_int_t
ngx_http_agentgov_metrics(ngx_http_request_t *r)
{
    u_char                          *buf, *p, *last;
    size_t                           size;
    uint64_t                         cum;
    ngx_uint_t                       i, d;
    ngx_http_agentgov_store_t       *s;
    ngx_http_agentgov_metrics_t     *m;
    ngx_http_agentgov_store_stats_t  st;
    ngx_http_agentgov_audit_head_t  *head;
    ngx_http_agentgov_main_conf_t   *amcf;
    ngx_http_agentgov_metric_tool_t *t;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);

    m = ngx_palloc(r->pool, sizeof(ngx_http_agentgov_metrics_t));
    head = ngx_palloc(r->pool, sizeof(ngx_http_agentgov_audit_head_t));

    if (m == NULL || head == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_agentgov_metrics_t));
    ngx_memzero(head, sizeof(ngx_http_agentgov_audit_head_t));

    if (s) {
        ngx_http_agentgov_store_observe(s, m, head);
    }

    ngx_http_agentgov_store_stats(s, &st);

    /* every tool row has at most D_N lines of bounded length */
    size = 8192 + (NGX_HTTP_AGENTGOV_METRIC_TOOLS + 2) * NGX_HTTP_AGENTGOV_D_N
                  * (96 + 4 * NGX_HTTP_AGENTGOV_METRIC_NAME);

    buf = ngx_pnalloc(r->pool, size);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = buf;
    last = buf + size;

    p = ngx_slprintf(p, last,
            "# HELP agentgov_decisions_total Decisions on tool calls, by "
            "tool and outcome.\n"
            "# TYPE agentgov_decisions_total counter\n");

    for (i = 0; i < NGX_HTTP_AGENTGOV_METRIC_TOOLS + 2; i++) {
        t = &m->tools[i];

        for (d = 0; d < NGX_HTTP_AGENTGOV_D_N; d++) {
            if (t->n[d] == 0) {
                continue;
            }

            p = ngx_slprintf(p, last, "agentgov_decisions_total{tool=\"");

            if (i == 0) {
                /* refused before the tool was known */

            } else if (i == NGX_HTTP_AGENTGOV_METRIC_TOOLS + 1) {
                p = ngx_slprintf(p, last, "(other)");

            } else {
                p = ngx_http_agentgov_metrics_label(p, last, t->name, t->len);
            }

            p = ngx_slprintf(p, last, "\",decision=\"%s\"} %uL\n",
                             ngx_http_agentgov_decision_names[d], t->n[d]);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP agentgov_refusals_total Refusals, by error code.\n"
            "# TYPE agentgov_refusals_total counter\n");

    for (i = 0; ngx_http_agentgov_metric_codes[i]; i++) {
        p = ngx_slprintf(p, last, "agentgov_refusals_total{code=\"%s\"} %uL\n",
                         ngx_http_agentgov_metric_codes[i], m->codes[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP agentgov_decision_duration_seconds Time the gateway took "
            "to decide a call (the wait for its body left out).\n"
            "# TYPE agentgov_decision_duration_seconds histogram\n");

    cum = 0;

    for (i = 0; i < NGX_HTTP_AGENTGOV_METRIC_BUCKETS; i++) {
        cum += m->buckets[i];

        if (ngx_http_agentgov_metric_bounds[i] < 0) {
            p = ngx_slprintf(p, last, "agentgov_decision_duration_seconds_"
                             "bucket{le=\"+Inf\"} %uL\n", cum);
            break;
        }

        p = ngx_slprintf(p, last, "agentgov_decision_duration_seconds_bucket"
                         "{le=\"%.6f\"} %uL\n",
                         (double) ngx_http_agentgov_metric_bounds[i] / 1e6,
                         cum);
    }

    p = ngx_slprintf(p, last,
            "agentgov_decision_duration_seconds_sum %.6f\n"
            "agentgov_decision_duration_seconds_count %uL\n",
            (double) m->latency_sum_us / 1e6, m->latency_count);

    p = ngx_slprintf(p, last,
            "# HELP agentgov_pending_holds Held calls waiting for a human.\n"
            "# TYPE agentgov_pending_holds gauge\n"
            "agentgov_pending_holds %ui\n"
            "# HELP agentgov_live_tasks Live tasks.\n"
            "# TYPE agentgov_live_tasks gauge\n"
            "agentgov_live_tasks %ui\n"
            "# HELP agentgov_suspended_agents Agents under the kill switch.\n"
            "# TYPE agentgov_suspended_agents gauge\n"
            "agentgov_suspended_agents %ui\n"
            "# HELP agentgov_stopped 1 while every agent is stopped.\n"
            "# TYPE agentgov_stopped gauge\n"
            "agentgov_stopped %ui\n"
            "# HELP agentgov_zone_used_ratio Share of agentgov_zone in use.\n"
            "# TYPE agentgov_zone_used_ratio gauge\n"
            "agentgov_zone_used_ratio %.4f\n",
            st.pending_holds, st.live_tasks, st.suspended_agents, st.stopped,
            st.used);

    p = ngx_slprintf(p, last,
            "# HELP agentgov_audit_records_total Audit records written since "
            "the zone was created.\n"
            "# TYPE agentgov_audit_records_total counter\n"
            "agentgov_audit_records_total %uL\n"
            "# HELP agentgov_audit_writes_total write() calls that carried "
            "them (results wait to go out with the next record).\n"
            "# TYPE agentgov_audit_writes_total counter\n"
            "agentgov_audit_writes_total %uL\n"
            "# HELP agentgov_audit_failures_total Audit records that could "
            "not be written.\n"
            "# TYPE agentgov_audit_failures_total counter\n"
            "agentgov_audit_failures_total %uL\n"
            "# HELP agentgov_audit_checkpoints_total Signed checkpoints "
            "written.\n"
            "# TYPE agentgov_audit_checkpoints_total counter\n"
            "agentgov_audit_checkpoints_total %uL\n"
            "# HELP agentgov_audit_failing 1 while the audit log cannot be "
            "written.\n"
            "# TYPE agentgov_audit_failing gauge\n"
            "agentgov_audit_failing %ui\n"
            "# HELP agentgov_audit_seq The seq of the chain's last record.\n"
            "# TYPE agentgov_audit_seq gauge\n"
            "agentgov_audit_seq %uL\n",
            head->records, head->writes, head->failures, head->checkpoints,
            head->failing, head->seq);

    if (amcf->policy) {
        p = ngx_slprintf(p, last,
                "# HELP agentgov_policy_info The policy in force.\n"
                "# TYPE agentgov_policy_info gauge\n"
                "agentgov_policy_info{sha256=\"%s\"} 1\n",
                ag_policy_sha256(amcf->policy));
    }

    return ngx_http_agentgov_send(r, NGX_HTTP_OK,
                                       &ngx_http_agentgov_text_type, buf,
                                       p - buf);
}


/* a label value: backslash, quote and newline escaped */

static u_char *
ngx_http_agentgov_metrics_label(u_char *p, u_char *last, u_char *s,
    size_t len)
{
    size_t  i;

    for (i = 0; i < len && last - p > 2; i++) {
        switch (s[i]) {
        case '\\': *p++ = '\\'; *p++ = '\\'; break;
        case '"':  *p++ = '\\'; *p++ = '"'; break;
        case '\n': *p++ = '\\'; *p++ = 'n'; break;
        default:   *p++ = s[i];
        }
    }

    return p;
}


/* --- GET /agentgov/health ------------------------------------------------- */

ngx_int_t
ngx_http_agentgov_health(ngx_http_request_t *r)
{
    json_t                          *out;
    ngx_int_t                        rc;
    ngx_uint_t                       status;
    const char                      *audit;
    ngx_pool_cleanup_t              *cln;
    ngx_http_agentgov_store_t       *s;
    ngx_http_agentgov_store_stats_t  st;
    ngx_http_agentgov_audit_head_t  *head;
    ngx_http_agentgov_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);

    status = NGX_HTTP_OK;
    audit = "off";

    ngx_http_agentgov_store_stats(s, &st);

    if (s && amcf->audit) {
        head = ngx_palloc(r->pool, sizeof(ngx_http_agentgov_audit_head_t));
        if (head == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_agentgov_store_observe(s, NULL, head);

        if (head->failing || head->broken) {
            audit = "failing";

            if (!amcf->audit->fail_open) {
                status = NGX_HTTP_SERVICE_UNAVAILABLE;
            }

        } else {
            audit = "ok";
        }
    }

    if (s && st.used >= NGX_HTTP_AGENTGOV_ZONE_FULL) {
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = json_pack("{s:s, s:s?, s:s, s:f}",
                    "status", status == NGX_HTTP_OK ? "ok" : "failing",
                    "policy", amcf->policy ? ag_policy_sha256(amcf->policy)
                                           : NULL,
                    "audit", audit,
                    "zone_used", (double) (int64_t) (st.used * 1e4) / 1e4);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = out;

    if (s && amcf->state_file.len
        && json_object_set_new(out, "state",
                               json_string(
                                   ngx_http_agentgov_store_state_failing(s)
                                   ? "failing" : "ok"))
           != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_agentgov_send_json(r, status, out);

    return rc;
}


/* --- GET /agentgov/v1/audit ----------------------------------------------- */

ngx_int_t
ngx_http_agentgov_audit_list(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    char                             err[256];
    u_char                           cursor[NGX_OFF_T_LEN + 1];
    off_t                            before, next;
    json_t                          *out;
    ngx_fd_t                         fd;
    ngx_int_t                        n;
    ngx_str_t                        name, v[8];
    ngx_uint_t                       limit;
    ag_audit_filter_t                f;
    ngx_pool_cleanup_t              *cln;
    ngx_http_agentgov_main_conf_t   *amcf;
    ngx_http_agentgov_audit_list_t   list;

    static ngx_str_t  keys[] = {
        ngx_string("agent"), ngx_string("task"), ngx_string("tool"),
        ngx_string("decision"), ngx_string("event"), ngx_string("since"),
        ngx_string("limit"), ngx_string("before")
    };

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    if (amcf->audit == NULL) {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_NOT_FOUND,
                                               "not_found", "no audit log "
                                               "is configured "
                                               "(agentgov_audit_log)");
    }

    switch (ngx_http_agentgov_query(r, keys, 8, v, &name)) {

    case NGX_OK:
        break;

    case NGX_ERROR:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    default:
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "bad_request", "unknown or "
                                               "repeated query parameter (agent,"
                                               " task, tool, decision, event, "
                                               "since, limit, before)");
    }

    ngx_memzero(&f, sizeof(ag_audit_filter_t));

    f.agent.p = (const char *) v[0].data;
    f.agent.len = v[0].len;
    f.task.p = (const char *) v[1].data;
    f.task.len = v[1].len;
    f.tool.p = (const char *) v[2].data;
    f.tool.len = v[2].len;
    f.decision.p = (const char *) v[3].data;
    f.decision.len = v[3].len;
    f.event.p = (const char *) v[4].data;
    f.event.len = v[4].len;

    if (v[5].len
        && ag_audit_ts_parse((const char *) v[5].data, v[5].len, &f.since_us)
           != 0)
    {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_BAD_REQUEST,
                                               "bad_request", "since: "
                                               "expected an RFC 3339 UTC "
                                               "time like "
                                               "2026-11-23T15:00:00Z");
    }

    limit = NGX_HTTP_AGENTGOV_AUDIT_LIMIT;

    if (v[6].len) {
        n = ngx_atoi(v[6].data, v[6].len);

        if (n < 1 || n > NGX_HTTP_AGENTGOV_AUDIT_LIMIT_MAX) {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "bad_request", "limit: "
                                                   "expected 1 to 1000");
        }

        limit = n;
    }

    before = -1;

    if (v[7].len) {
        before = ngx_atoof(v[7].data, v[7].len);

        if (before < 0) {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "bad_request", "before: "
                                                   "expected the \"next\" of "
                                                   "an earlier answer");
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = json_object();
    list.items = json_array();

    if (out == NULL || list.items == NULL
        || json_object_set_new(out, "items", list.items) != 0)
    {
        json_decref(out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = out;

    list.r = r;
    list.failed = 0;

    fd = ngx_open_file(amcf->audit->path.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "agentgov: cannot read the audit log \"%V\"",
                      &amcf->audit->path);

        return ngx_http_agentgov_refuse_content(r, ctx,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "gateway_error", "the audit "
                                               "log cannot be read");
    }

    next = 0;

    n = ag_audit_read_back(fd, before, &f, limit,
                           NGX_HTTP_AGENTGOV_AUDIT_SCAN,
                           ngx_http_agentgov_audit_item, &list, &next, err,
                           sizeof(err));

    (void) ngx_close_file(fd);

    if (n != 0) {
        if (before >= 0) {
            return ngx_http_agentgov_refuse_content(r, ctx,
                                                   NGX_HTTP_BAD_REQUEST,
                                                   "bad_request", "before: "
                                                   "not a place in the audit "
                                                   "log (was it rotated?)");
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "agentgov: cannot read the audit log \"%V\": %s",
                      &amcf->audit->path, err);

        return ngx_http_agentgov_refuse_content(r, ctx,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "gateway_error", "the audit "
                                               "log cannot be read");
    }

    if (list.failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (next > 0) {
        ngx_sprintf(cursor, "%O%Z", next);

        if (json_object_set_new(out, "next", json_string((char *) cursor))
            != 0)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else if (json_object_set_new(out, "next", json_null()) != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_agentgov_send_json(r, NGX_HTTP_OK, out);
}


static int
ngx_http_agentgov_audit_item(void *data, const char *line, size_t len)
{
    ngx_http_agentgov_audit_list_t *list = data;

    json_t  *rec;

    /* the gateway wrote it: a line that is not JSON is skipped, not shown */
    rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);

    if (rec == NULL) {
        return 0;
    }

    if (json_array_append_new(list->items, rec) != 0) {
        list->failed = 1;
        return 1;
    }

    return 0;
}


/* --- GET /agentgov/v1/audit/checkpoint ------------------------------------ */

ngx_int_t
ngx_http_agentgov_audit_checkpoint(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    u_char                          *p;
    ngx_http_agentgov_store_t       *s;
    ngx_http_agentgov_audit_head_t  *head;
    ngx_http_agentgov_main_conf_t   *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);

    if (amcf->audit == NULL || s == NULL) {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_NOT_FOUND,
                                               "not_found", "no audit log "
                                               "is configured "
                                               "(agentgov_audit_log)");
    }

    head = ngx_palloc(r->pool, sizeof(ngx_http_agentgov_audit_head_t));
    if (head == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_agentgov_store_observe(s, NULL, head);

    if (head->cp_len == 0) {
        return ngx_http_agentgov_refuse_content(r, ctx, NGX_HTTP_NOT_FOUND,
                                               "not_found", "no checkpoint "
                                               "since the gateway started: "
                                               "one follows every 1000 "
                                               "records and every minute");
    }

    p = ngx_pnalloc(r->pool, head->cp_len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, head->cp_line, head->cp_len);
    p[head->cp_len] = '\n';

    return ngx_http_agentgov_send(r, NGX_HTTP_OK,
                                       &ngx_http_agentgov_json_type, p,
                                       head->cp_len + 1);
}


/* --- helpers ---------------------------------------------------------------- */
