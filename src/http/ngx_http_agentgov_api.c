/*
 * The control API (SPEC section 4): tasks and the kill switch.
 *
 * A content handler, set by "agentgov_api" in a prefix location; it routes on
 * the URI after the location's prefix ("v1/tasks", ...). Callers are agents
 * (Agent-Authorization or a SPIFFE client certificate) or people
 * (Authorization); what each may do is decided here, what the policy allows
 * by the engine (ag_task_plan), and the live state by the store.
 *
 * Writes (POST, DELETE) read a JSON body of at most 64 KiB and refuse keys
 * they do not know. Every refusal is the JSON error of SPEC section 9.
 */

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_json.h"
#include "ag_audit.h"


#define NGX_HTTP_AGENTGOV_API_BODY_MAX    (64 * 1024)
#define NGX_HTTP_AGENTGOV_API_LIMIT       100
#define NGX_HTTP_AGENTGOV_API_LIMIT_MAX   1000
/* a task's strings, as the store copies them (ngx_http_agentgov_store.h) */
#define NGX_HTTP_AGENTGOV_API_TASK_BUF    8192


typedef enum {
    NGX_HTTP_AGENTGOV_API_NONE = 0,
    NGX_HTTP_AGENTGOV_API_TASKS,          /* v1/tasks */
    NGX_HTTP_AGENTGOV_API_TASK,           /* v1/tasks/<id> */
    NGX_HTTP_AGENTGOV_API_RENEW,          /* v1/tasks/<id>/renew */
    NGX_HTTP_AGENTGOV_API_SUSPEND,        /* v1/agents/<agent>/suspend */
    NGX_HTTP_AGENTGOV_API_RESUME,         /* v1/agents/<agent>/resume */
    NGX_HTTP_AGENTGOV_API_STOP,           /* v1/stop */
    NGX_HTTP_AGENTGOV_API_START,          /* v1/start */
    NGX_HTTP_AGENTGOV_API_APPROVALS,      /* v1/approvals */
    NGX_HTTP_AGENTGOV_API_APPROVAL,       /* v1/approvals/<id> */
    NGX_HTTP_AGENTGOV_API_PINS,           /* v1/tools/<tool>/pins */
    NGX_HTTP_AGENTGOV_API_AUDIT,          /* v1/audit */
    NGX_HTTP_AGENTGOV_API_CHECKPOINT,     /* v1/audit/checkpoint */
    NGX_HTTP_AGENTGOV_API_METRICS,        /* metrics: no identity */
    NGX_HTTP_AGENTGOV_API_HEALTH          /* health: no identity */
} ngx_http_agentgov_api_route_e;


/*
 * One API request. The module's request ctx is the shared one (identity,
 * request id), so this is rebuilt on the stack on each entry: once before the
 * body is read and once after.
 */
typedef struct {
    ngx_http_request_t             *r;
    ngx_http_agentgov_ctx_t        *ctx;
    ngx_http_agentgov_main_conf_t  *amcf;
    ngx_http_agentgov_store_t      *store;

    ngx_http_agentgov_api_route_e   route;
    ngx_str_t                       arg;      /* task id or agent name */
    ngx_uint_t                      methods;  /* allowed on the route */
    const char                     *allow;    /* the Allow header */

    unsigned                        admin:1;
    unsigned                        auditor:1;

    json_t                         *body;     /* the parsed body, or NULL */
    int64_t                         now;
} ngx_http_agentgov_api_t;


typedef struct {
    json_t                         *items;
    int64_t                         now;
    ngx_uint_t                      failed;
} ngx_http_agentgov_api_list_t;


static ngx_int_t ngx_http_agentgov_api_handler(ngx_http_request_t *r);
static void ngx_http_agentgov_api_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_agentgov_api_init(ngx_http_request_t *r,
    ngx_http_agentgov_api_t *api);
static void ngx_http_agentgov_api_route(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_authorize(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_dispatch(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_read_body(ngx_http_agentgov_api_t *api);

static ngx_int_t ngx_http_agentgov_api_declare(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_parent(ngx_http_agentgov_api_t *api,
    ag_task_t *parent, u_char *buf);
static ngx_int_t ngx_http_agentgov_api_list(ngx_http_agentgov_api_t *api);
static void ngx_http_agentgov_api_list_item(void *data, const ag_task_t *t);
static ngx_int_t ngx_http_agentgov_api_get(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_end(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_renew(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_suspend(ngx_http_agentgov_api_t *api,
    ngx_uint_t on);
static ngx_int_t ngx_http_agentgov_api_stop(ngx_http_agentgov_api_t *api,
    ngx_uint_t on);

static ngx_int_t ngx_http_agentgov_api_fetch(ngx_http_agentgov_api_t *api,
    ag_task_t *t, u_char *buf);
static ngx_int_t ngx_http_agentgov_api_not_live(ngx_http_agentgov_api_t *api,
    ag_task_state_t state, const char *what);
static ngx_int_t ngx_http_agentgov_api_store_error(
    ngx_http_agentgov_api_t *api, ngx_http_agentgov_store_rc_e rc);
static ngx_int_t ngx_http_agentgov_api_body_keys(ngx_http_agentgov_api_t *api,
    const char **keys);
static ngx_int_t ngx_http_agentgov_api_suspended(ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_error(ngx_http_agentgov_api_t *api,
    ngx_uint_t status, const char *code, const char *fmt, ...);
static ngx_int_t ngx_http_agentgov_api_internal(ngx_http_agentgov_api_t *api,
    const char *what);

static ngx_int_t ngx_http_agentgov_api_audit(ngx_http_agentgov_api_t *api,
    const ag_task_t *t, const char *agent, const char *error,
    ngx_str_t *reason);
static ngx_int_t ngx_http_agentgov_api_unrecorded(
    ngx_http_agentgov_api_t *api);
static ngx_int_t ngx_http_agentgov_api_approvals(ngx_http_agentgov_api_t *api);
static void ngx_http_agentgov_api_person(ngx_http_agentgov_api_t *api,
    ngx_str_t *who);
static ag_str_t ngx_http_agentgov_api_agent(ngx_http_agentgov_api_t *api);
static ag_str_t ngx_http_agentgov_api_cnf(ngx_http_agentgov_api_t *api);
static void ngx_http_agentgov_api_who(ngx_http_agentgov_api_t *api,
    ngx_str_t *who);
static const char *ngx_http_agentgov_api_issuer(ngx_http_agentgov_api_t *api);
static json_t *ngx_http_agentgov_api_json(ngx_http_request_t *r,
    json_t *json);


static ngx_str_t  ngx_http_agentgov_api_json_type =
    ngx_string("application/json");


/*
 * agentgov_api: this location answers the control API. Its prerequisites
 * (agentgov_policy, agentgov_zone, agentgov_signing_key) may be set after
 * the location in the http block, so they are checked when the location is
 * merged: ngx_http_agentgov_api_check().
 */

char *
ngx_http_agentgov_api_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_agentgov_api_handler) {
        return "is duplicate";
    }

    if (clcf->handler != NULL) {
        return "conflicts with another content handler in this location";
    }

    clcf->handler = ngx_http_agentgov_api_handler;

    return NGX_CONF_OK;
}


/*
 * Called from the location merge, where every http-level directive has been
 * read whatever its order: a control API without its state or its key cannot
 * answer a single task, so it fails "nginx -t" rather than every request.
 */

char *
ngx_http_agentgov_api_check(ngx_conf_t *cf)
{
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_agentgov_main_conf_t  *amcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != ngx_http_agentgov_api_handler) {
        return NGX_CONF_OK;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_agentgov_module);

    if (amcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentgov_api\" in location \"%V\" needs "
                           "\"agentgov_policy\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (amcf->zone == NULL || amcf->signing_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"agentgov_api\" in location \"%V\" needs "
                           "\"agentgov_zone\" and \"agentgov_signing_key\"",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Return values of the route handlers are what ngx_http_finalize_request()
 * takes: the rc of a response sent, a status for nginx to answer, or
 * NGX_DONE after a refusal (ngx_http_agentgov_api_error() takes a reference
 * on the request for the finalization ngx_http_agentgov_refuse() does, so
 * that the one the caller does next is balanced).
 */

static ngx_int_t
ngx_http_agentgov_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_http_agentgov_api_t      api;
    ngx_http_agentgov_refusal_t  ref;

    rc = ngx_http_agentgov_api_init(r, &api);
    if (rc != NGX_OK) {
        return rc;
    }

    if (api.route == NGX_HTTP_AGENTGOV_API_NONE) {
        return ngx_http_agentgov_api_error(&api, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no such API "
                                           "endpoint: %V", &r->uri);
    }

    if (!(r->method & api.methods)) {
        return ngx_http_agentgov_api_error(&api, NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed", "%V is not "
                                           "allowed here; allowed: %s",
                                           &r->method_name, api.allow);
    }

    /* restricted by nginx's allow/deny, not by identity (SPEC section 8) */

    if (api.route == NGX_HTTP_AGENTGOV_API_METRICS) {
        return ngx_http_agentgov_metrics(r);
    }

    if (api.route == NGX_HTTP_AGENTGOV_API_HEALTH) {
        return ngx_http_agentgov_health(r);
    }

    /* misconfigured and not refused by "nginx -t": see the check above */
    if (api.amcf->policy == NULL || api.store == NULL
        || api.amcf->signing_key == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "agentgov: agentgov_api needs agentgov_policy, "
                      "agentgov_zone and agentgov_signing_key");

        return ngx_http_agentgov_api_error(&api,
                                           NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "gateway_error", "the control "
                                           "API is not configured");
    }

    rc = ngx_http_agentgov_identify(r, api.ctx, 1, &ref);

    if (rc == NGX_DECLINED) {
        if ((r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))
            && api.route <= NGX_HTTP_AGENTGOV_API_START)
        {
            /* a refused write is a decision: recorded, refused either way */
            (void) ngx_http_agentgov_api_audit(&api, NULL, NULL, ref.code,
                                               &ref.message);
        }

        r->main->count++;
        return ngx_http_agentgov_refuse(r, api.ctx, &ref);
    }

    if (rc != NGX_OK) {
        return ngx_http_agentgov_api_internal(&api, "identity");
    }

    rc = ngx_http_agentgov_api_authorize(&api);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))) {
        return ngx_http_agentgov_api_dispatch(&api);
    }

    /* a write: its body first, then the route again in the body handler */

    if (r->headers_in.content_length_n > NGX_HTTP_AGENTGOV_API_BODY_MAX) {
        return ngx_http_agentgov_api_error(&api,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "body_too_large", "the body of "
                                           "an API request is limited to "
                                           "64 KiB");
    }

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_agentgov_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_agentgov_api_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_agentgov_api_t  api;

    rc = ngx_http_agentgov_api_init(r, &api);

    if (rc == NGX_OK) {
        /* identity is in the ctx; roles are cheap to compute again */
        rc = ngx_http_agentgov_api_authorize(&api);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_agentgov_api_read_body(&api);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_agentgov_api_dispatch(&api);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_agentgov_api_init(ngx_http_request_t *r, ngx_http_agentgov_api_t *api)
{
    ngx_memzero(api, sizeof(ngx_http_agentgov_api_t));

    api->r = r;
    api->now = ngx_time();
    api->amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);

    api->ctx = ngx_http_agentgov_get_ctx(r);
    if (api->ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    api->store = ngx_http_agentgov_store(r);

    ngx_http_agentgov_api_route(api);

    return NGX_OK;
}


/*
 * The route is read from nginx's normalised r->uri after the location's
 * prefix, so "location /agentgov/" and "location /gw/api/" both work.
 */

static void
ngx_http_agentgov_api_route(ngx_http_agentgov_api_t *api)
{
    u_char                    *p, *last, *slash;
    ngx_str_t                  path, tail;
    ngx_uint_t                 tasks;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = api->r;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    path = r->uri;

    if (
#if (NGX_PCRE)
        clcf->regex == NULL &&
#endif
        !clcf->named
        && path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;
    }

    if (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    p = path.data;
    last = path.data + path.len;

#define ngx_http_agentgov_api_is(s)                                           \
    ((size_t) (last - p) == sizeof(s) - 1                                     \
     && ngx_strncmp(p, s, sizeof(s) - 1) == 0)

#define ngx_http_agentgov_api_starts(s)                                       \
    ((size_t) (last - p) > sizeof(s) - 1                                      \
     && ngx_strncmp(p, s, sizeof(s) - 1) == 0)

    if (ngx_http_agentgov_api_is("v1/tasks")) {
        api->route = NGX_HTTP_AGENTGOV_API_TASKS;
        api->methods = NGX_HTTP_GET|NGX_HTTP_POST;
        api->allow = "GET, POST";
        return;
    }

    if (ngx_http_agentgov_api_is("metrics")
        || ngx_http_agentgov_api_is("health"))
    {
        api->route = (*p == 'm') ? NGX_HTTP_AGENTGOV_API_METRICS
                                 : NGX_HTTP_AGENTGOV_API_HEALTH;
        api->methods = NGX_HTTP_GET|NGX_HTTP_HEAD;
        api->allow = "GET, HEAD";
        return;
    }

    if (ngx_http_agentgov_api_is("v1/audit")
        || ngx_http_agentgov_api_is("v1/audit/checkpoint"))
    {
        api->route = (last - p == sizeof("v1/audit") - 1)
                     ? NGX_HTTP_AGENTGOV_API_AUDIT
                     : NGX_HTTP_AGENTGOV_API_CHECKPOINT;
        api->methods = NGX_HTTP_GET|NGX_HTTP_HEAD;
        api->allow = "GET, HEAD";
        return;
    }

    if (ngx_http_agentgov_api_is("v1/approvals")) {
        api->route = NGX_HTTP_AGENTGOV_API_APPROVALS;
        api->methods = NGX_HTTP_GET|NGX_HTTP_HEAD;
        api->allow = "GET, HEAD";
        return;
    }

    if (ngx_http_agentgov_api_starts("v1/approvals/")) {
        api->arg.data = p + sizeof("v1/approvals/") - 1;
        api->arg.len = last - api->arg.data;

        if (ngx_strlchr(api->arg.data, last, '/') == NULL) {
            api->route = NGX_HTTP_AGENTGOV_API_APPROVAL;
            api->methods = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST;
            api->allow = "GET, HEAD, POST";
        }

        return;
    }

    if (ngx_http_agentgov_api_starts("v1/tools/")
        && last - p > (ssize_t) (sizeof("v1/tools//pins") - 1)
        && ngx_strncmp(last - (sizeof("/pins") - 1), "/pins",
                       sizeof("/pins") - 1) == 0)
    {
        api->arg.data = p + sizeof("v1/tools/") - 1;
        api->arg.len = last - (sizeof("/pins") - 1) - api->arg.data;

        if (ngx_strlchr(api->arg.data, api->arg.data + api->arg.len, '/')
            == NULL)
        {
            api->route = NGX_HTTP_AGENTGOV_API_PINS;
            api->methods = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST;
            api->allow = "GET, HEAD, POST";
        }

        return;
    }

    if (ngx_http_agentgov_api_is("v1/stop")) {
        api->route = NGX_HTTP_AGENTGOV_API_STOP;
        api->methods = NGX_HTTP_POST;
        api->allow = "POST";
        return;
    }

    if (ngx_http_agentgov_api_is("v1/start")) {
        api->route = NGX_HTTP_AGENTGOV_API_START;
        api->methods = NGX_HTTP_POST;
        api->allow = "POST";
        return;
    }

    if (ngx_http_agentgov_api_starts("v1/tasks/")) {
        p += sizeof("v1/tasks/") - 1;
        tasks = 1;

    } else if (ngx_http_agentgov_api_starts("v1/agents/")) {
        p += sizeof("v1/agents/") - 1;
        tasks = 0;

    } else {
        return;
    }

#undef ngx_http_agentgov_api_is
#undef ngx_http_agentgov_api_starts

    /* <name>[/<action>] */

    slash = ngx_strlchr(p, last, '/');

    api->arg.data = p;
    api->arg.len = (slash ? slash : last) - p;

    if (api->arg.len == 0) {
        return;
    }

    tail.data = slash ? slash + 1 : last;
    tail.len = last - tail.data;

    if (tasks) {
        if (slash == NULL) {
            api->route = NGX_HTTP_AGENTGOV_API_TASK;
            api->methods = NGX_HTTP_GET|NGX_HTTP_DELETE;
            api->allow = "GET, DELETE";

        } else if (tail.len == 5 && ngx_strncmp(tail.data, "renew", 5) == 0) {
            api->route = NGX_HTTP_AGENTGOV_API_RENEW;
            api->methods = NGX_HTTP_POST;
            api->allow = "POST";
        }

        return;
    }

    if (slash == NULL) {                           /* v1/agents/<agent> */
        return;
    }

    if (tail.len == 7 && ngx_strncmp(tail.data, "suspend", 7) == 0) {
        api->route = NGX_HTTP_AGENTGOV_API_SUSPEND;

    } else if (tail.len == 6 && ngx_strncmp(tail.data, "resume", 6) == 0) {
        api->route = NGX_HTTP_AGENTGOV_API_RESUME;

    } else {
        return;
    }

    api->methods = NGX_HTTP_POST;
    api->allow = "POST";
}


/*
 * Who may call what, from the identity alone; what needs the task (is it the
 * caller's?) is checked by the route's handler. An agent is never a person,
 * whatever groups its claims name (SPEC section 3).
 */

static ngx_int_t
ngx_http_agentgov_api_authorize(ngx_http_agentgov_api_t *api)
{
    ag_identity_t  id;

    if (api->ctx->person) {
        ngx_http_agentgov_identity(api->ctx, &id);

        api->admin = ag_policy_is_admin(api->amcf->policy, &id) ? 1 : 0;
        api->auditor = ag_policy_is_auditor(api->amcf->policy, &id) ? 1 : 0;
    }

    switch (api->route) {

    case NGX_HTTP_AGENTGOV_API_TASKS:
        if (api->r->method == NGX_HTTP_POST) {
            if (api->ctx->agent == NULL) {
                return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN,
                                                   "denied", "only an agent "
                                                   "declares tasks");
            }

            return NGX_OK;
        }

        /* fall through */

    case NGX_HTTP_AGENTGOV_API_TASK:
        if (api->ctx->agent || api->admin) {
            return NGX_OK;
        }

        if (api->auditor && api->r->method == NGX_HTTP_GET) {
            return NGX_OK;
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "tasks are shown to their agent, "
                                           "admins and auditors, and ended "
                                           "by their agent and admins");

    case NGX_HTTP_AGENTGOV_API_RENEW:
        if (api->ctx->agent) {
            return NGX_OK;
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "only the task's agent renews it");

    case NGX_HTTP_AGENTGOV_API_APPROVALS:
    case NGX_HTTP_AGENTGOV_API_APPROVAL:
        if (api->ctx->person) {
            /* which holds: decided per hold (its rules' approvers) */
            return NGX_OK;
        }

        /* an agent reads the status of its own (async) approvals */
        if (api->ctx->agent && api->route == NGX_HTTP_AGENTGOV_API_APPROVAL
            && api->r->method != NGX_HTTP_POST)
        {
            return NGX_OK;
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "approvals are shown to and "
                                           "decided by people; an agent "
                                           "never approves");

    case NGX_HTTP_AGENTGOV_API_PINS:
        if (api->admin || (api->auditor && api->r->method != NGX_HTTP_POST)) {
            return NGX_OK;
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "MCP tool pins are shown to "
                                           "admins and auditors, and "
                                           "accepted by admins");

    case NGX_HTTP_AGENTGOV_API_AUDIT:
    case NGX_HTTP_AGENTGOV_API_CHECKPOINT:
        if (api->auditor) {
            return NGX_OK;
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "the audit log is shown to the "
                                           "policy's auditors only");

    default: /* the kill switch */
        if (api->admin) {
            return NGX_OK;
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "only admins may suspend, resume, "
                                           "stop or start agents");
    }
}


static ngx_int_t
ngx_http_agentgov_api_dispatch(ngx_http_agentgov_api_t *api)
{
    ngx_str_t  who;

    switch (api->route) {

    case NGX_HTTP_AGENTGOV_API_TASKS:
        if (api->r->method == NGX_HTTP_POST) {
            return ngx_http_agentgov_api_declare(api);
        }

        return ngx_http_agentgov_api_list(api);

    case NGX_HTTP_AGENTGOV_API_TASK:
        if (api->r->method == NGX_HTTP_DELETE) {
            return ngx_http_agentgov_api_end(api);
        }

        return ngx_http_agentgov_api_get(api);

    case NGX_HTTP_AGENTGOV_API_RENEW:
        return ngx_http_agentgov_api_renew(api);

    case NGX_HTTP_AGENTGOV_API_SUSPEND:
        return ngx_http_agentgov_api_suspend(api, 1);

    case NGX_HTTP_AGENTGOV_API_RESUME:
        return ngx_http_agentgov_api_suspend(api, 0);

    case NGX_HTTP_AGENTGOV_API_STOP:
        return ngx_http_agentgov_api_stop(api, 1);

    case NGX_HTTP_AGENTGOV_API_START:
        return ngx_http_agentgov_api_stop(api, 0);

    case NGX_HTTP_AGENTGOV_API_APPROVALS:
    case NGX_HTTP_AGENTGOV_API_APPROVAL:
        return ngx_http_agentgov_api_approvals(api);

    case NGX_HTTP_AGENTGOV_API_PINS:
        ngx_http_agentgov_api_person(api, &who);

        return ngx_http_agentgov_mcp_pins(api->r, api->ctx, &api->arg, &who,
                                          api->body);

    case NGX_HTTP_AGENTGOV_API_AUDIT:
        return ngx_http_agentgov_audit_list(api->r, api->ctx);

    case NGX_HTTP_AGENTGOV_API_CHECKPOINT:
        return ngx_http_agentgov_audit_checkpoint(api->r, api->ctx);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * The body, whole, from memory or from the temporary file nginx buffered it
 * to, parsed strictly (duplicate keys, depth, UTF-8: ag_json_parse). An
 * empty body leaves api->body NULL.
 */

static ngx_int_t
ngx_http_agentgov_api_read_body(ngx_http_agentgov_api_t *api)
{
    off_t                total, size;
    char                 err[256];
    u_char              *data, *p;
    ssize_t              n;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = api->r;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    total = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        total += ngx_buf_size(cl->buf);
    }

    /* a chunked body has no Content-Length to refuse it early */
    if (total > NGX_HTTP_AGENTGOV_API_BODY_MAX) {
        return ngx_http_agentgov_api_error(api,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "body_too_large", "the body of "
                                           "an API request is limited to "
                                           "64 KiB");
    }

    if (total == 0) {
        return NGX_OK;
    }

    data = ngx_pnalloc(r->pool, (size_t) total);
    if (data == NULL) {
        return ngx_http_agentgov_api_internal(api, "body");
    }

    p = data;

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
                          "agentgov: cannot read the buffered API request "
                          "body");
            return ngx_http_agentgov_api_internal(api, "body");
        }

        p += size;
    }

    api->body = ngx_http_agentgov_api_json(r,
                                           ag_json_parse((const char *) data,
                                                         p - data, err,
                                                         sizeof(err)));
    if (api->body == NULL) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "the body is not "
                                           "acceptable JSON: %s", err);
    }

    if (!json_is_object(api->body)) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "the body must be "
                                           "a JSON object");
    }

    return NGX_OK;
}


/* --- POST v1/tasks ------------------------------------------------------- */

static ngx_int_t
ngx_http_agentgov_api_declare(ngx_http_agentgov_api_t *api)
{
    char                          err[256], *tok;
    u_char                       *buf, *pbuf, exp[32];
    json_t                       *out;
    ngx_int_t                     rc;
    ag_task_t                     t, parent, *pp;
    ag_task_error_t               e;
    const ag_agent_t             *agent;
    ngx_http_agentgov_store_rc_e  src;

    agent = api->ctx->agent;

    rc = ngx_http_agentgov_api_suspended(api);
    if (rc != NGX_OK) {
        return rc;
    }

    if (api->body == NULL) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "a task is declared "
                                           "with a JSON body: {\"intent\", "
                                           "\"ttl\", \"tools\", \"purpose\"}");
    }

    buf = ngx_pnalloc(api->r->pool, 2 * NGX_HTTP_AGENTGOV_API_TASK_BUF);
    if (buf == NULL) {
        return ngx_http_agentgov_api_internal(api, "declare");
    }

    pbuf = buf + NGX_HTTP_AGENTGOV_API_TASK_BUF;

    rc = ngx_http_agentgov_api_parent(api, &parent, pbuf);

    if (rc == NGX_DECLINED) {
        pp = NULL;

    } else if (rc == NGX_OK) {
        pp = &parent;

    } else {
        return rc;
    }

    ngx_memzero(&t, sizeof(ag_task_t));
    ngx_memzero(&e, sizeof(ag_task_error_t));

    if (ag_task_plan(api->amcf->policy, agent, ngx_http_agentgov_api_cnf(api),
                     api->body, pp, api->now, &t, (char *) buf,
                     NGX_HTTP_AGENTGOV_API_TASK_BUF, &e)
        != 0)
    {
        return ngx_http_agentgov_api_error(api, e.status ? e.status : 400,
                                           e.code ? e.code : "bad_request",
                                           "%s", e.message);
    }

    out = ngx_http_agentgov_api_json(api->r, json_object());

    if (out == NULL
        || json_object_set_new(out, "task", json_stringn(t.id.p, t.id.len))
           != 0)
    {
        return ngx_http_agentgov_api_internal(api, "declare");
    }

    /* minted before the task is stored, so that no task is left without a
       token if minting fails */

    if (ag_task_token_mint(api->amcf->task_key,
                           ngx_http_agentgov_api_issuer(api), &t, api->now,
                           &tok, err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, api->r->connection->log, 0,
                      "agentgov: cannot mint a task token: %s", err);

        return ngx_http_agentgov_api_error(api, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "gateway_error", "cannot mint the "
                                           "task token");
    }

    if (json_object_set_new(out, "token", json_string(tok)) != 0) {
        ngx_explicit_memzero(tok, ngx_strlen(tok));
        free(tok);
        return ngx_http_agentgov_api_internal(api, "declare");
    }

    ngx_explicit_memzero(tok, ngx_strlen(tok));
    free(tok);

    /* the whole answer before the task is stored: once stored, it counts
       against max_tasks, so nothing may fail between storing and sending */

    ag_time_rfc3339(t.expires, (char *) exp, sizeof(exp));

    if (json_object_set_new(out, "intent",
                            json_stringn(t.intent.p, t.intent.len)) != 0
        || json_object_set_new(out, "tools", ag_task_tools_json(t.tools))
           != 0
        || json_object_set_new(out, "parent",
                               t.parent.len
                               ? json_stringn(t.parent.p, t.parent.len)
                               : json_null()) != 0
        || json_object_set_new(out, "chain",
                               t.chain.len
                               ? json_stringn(t.chain.p, t.chain.len)
                               : json_null()) != 0
        || json_object_set_new(out, "depth", json_integer(t.depth)) != 0
        || json_object_set_new(out, "expires_at",
                               json_string((char *) exp)) != 0)
    {
        return ngx_http_agentgov_api_internal(api, "declare");
    }

    src = ngx_http_agentgov_store_task_add(api->store, &t,
                                           agent->max_tasks > 0
                                           ? (ngx_uint_t) agent->max_tasks
                                           : 100,
                                           api->now);

    switch (src) {

    case NGX_AGENTGOV_STORE_OK:
        break;

    case NGX_AGENTGOV_STORE_LIMIT:
        return ngx_http_agentgov_api_error(api, NGX_HTTP_TOO_MANY_REQUESTS,
                                           "limit_exceeded", "agent \"%s\" "
                                           "already holds its limit of %d "
                                           "live tasks (max_tasks)",
                                           agent->name, agent->max_tasks);

    case NGX_AGENTGOV_STORE_NOT_LIVE:
        return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                           "task_revoked", "the parent task "
                                           "ended while this one was "
                                           "declared");

    default:
        return ngx_http_agentgov_api_store_error(api, src);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, api->r->connection->log, 0,
                   "agentgov: task %*s declared by \"%s\"",
                   t.id.len, t.id.p, agent->name);

    if (ngx_http_agentgov_api_audit(api, &t, NULL, NULL, NULL) != NGX_OK) {
        /* no authority without its record (fail=closed) */
        (void) ngx_http_agentgov_store_task_end(api->store, t.id,
                                                AG_TASK_REVOKED, api->now,
                                                NULL);
        return ngx_http_agentgov_api_unrecorded(api);
    }

    return ngx_http_agentgov_send_json(api->r, NGX_HTTP_CREATED, out);
}


/*
 * Delegation: an Agent-Task header on a declaration is the parent's task
 * token. Its MAC proves the gateway issued it; the store says whether the
 * parent still lives, and its record (renewed expiry included) is what the
 * child is planned against. NGX_DECLINED: no parent.
 */

static ngx_int_t
ngx_http_agentgov_api_parent(ngx_http_agentgov_api_t *api, ag_task_t *parent,
    u_char *buf)
{
    char                          err[256];
    json_t                       *claims;
    ngx_uint_t                    n;
    ag_task_t                     t;
    ngx_table_elt_t              *h;
    ag_task_token_status_t        st;
    ngx_http_agentgov_store_rc_e  rc;

    h = ngx_http_agentgov_find_header(api->r, "Agent-Task",
                                      sizeof("Agent-Task") - 1, &n);
    if (h == NULL) {
        return NGX_DECLINED;
    }

    if (n > 1) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "more than one "
                                           "Agent-Task header");
    }

    ngx_memzero(&t, sizeof(ag_task_t));
    claims = NULL;

    st = ag_task_token_verify(api->amcf->task_key,
                              ngx_http_agentgov_api_issuer(api),
                              (const char *) h->value.data, h->value.len,
                              api->now, &claims, &t, err, sizeof(err));

    if (st != AG_TASK_TOKEN_OK) {
        json_decref(claims);

        ngx_log_error(NGX_LOG_INFO, api->r->connection->log, 0,
                      "agentgov: parent task token refused: %s", err);

        if (st == AG_TASK_TOKEN_EXPIRED) {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                               "task_expired", "the parent "
                                               "task token has expired");
        }

        return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                           "no_task", "Agent-Task is not a "
                                           "valid task token of this "
                                           "gateway");
    }

    /* the claims hold t's strings: copy the id before letting them go */

    ngx_memzero(parent, sizeof(ag_task_t));

    rc = ngx_http_agentgov_store_task_get(api->store, t.id, parent, buf,
                                          NGX_HTTP_AGENTGOV_API_TASK_BUF,
                                          api->now);
    json_decref(claims);

    if (rc == NGX_AGENTGOV_STORE_NOT_FOUND) {
        /* ended tasks leave the store when memory runs short */
        return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                           "task_revoked", "the parent task "
                                           "is no longer known");
    }

    if (rc != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_api_store_error(api, rc);
    }

    if (parent->state != AG_TASK_LIVE) {
        return ngx_http_agentgov_api_not_live(api, parent->state,
                                              "the parent task");
    }

    return NGX_OK;
}


/* --- GET v1/tasks -------------------------------------------------------- */

static ngx_int_t
ngx_http_agentgov_api_list(ngx_http_agentgov_api_t *api)
{
    u_char                          next[AG_TASK_ID_LEN + 1];
    int                             state;
    json_t                         *out;
    ag_str_t                        agent, cursor;
    ngx_str_t                       name, v[4];
    ngx_int_t                       n;
    ngx_uint_t                      i, limit;
    ngx_http_agentgov_api_list_t    list;
    ngx_http_agentgov_store_rc_e    rc;

    static ngx_str_t  keys[] = {
        ngx_string("agent"), ngx_string("state"), ngx_string("cursor"),
        ngx_string("limit")
    };

    static const char  *states[] = { "live", "ended", "revoked", "expired" };

    /* strict: a misspelt or repeated parameter must not widen a listing */

    switch (ngx_http_agentgov_query(api->r, keys, 4, v, &name)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "unknown query "
                                           "parameter \"%V\" (agent, "
                                           "state, cursor, limit)", &name);

    case NGX_BUSY:
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "query "
                                           "parameter \"%V\" given twice",
                                           &name);

    default:
        return ngx_http_agentgov_api_internal(api, "list");
    }

    /* agent: an agent sees its own tasks only */

    agent.p = (const char *) v[0].data;
    agent.len = v[0].len;

    if (api->ctx->agent) {
        if (agent.len
            && (agent.len != ngx_strlen(api->ctx->agent->name)
                || ngx_strncmp(agent.p, api->ctx->agent->name, agent.len)
                   != 0))
        {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN,
                                               "denied", "an agent lists "
                                               "only its own tasks");
        }

        agent = ngx_http_agentgov_api_agent(api);
    }

    state = -1;

    if (v[1].len) {
        for (i = 0; i < 4; i++) {
            if (v[1].len == ngx_strlen(states[i])
                && ngx_strncmp(v[1].data, states[i], v[1].len) == 0)
            {
                break;
            }
        }

        if (i == 4) {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                               "bad_request", "state must be "
                                               "live, ended, revoked or "
                                               "expired");
        }

        state = (i == 0) ? AG_TASK_LIVE
                : (i == 1) ? AG_TASK_ENDED
                : (i == 2) ? AG_TASK_REVOKED : AG_TASK_EXPIRED;
    }

    cursor.p = (const char *) v[2].data;
    cursor.len = v[2].len;

    if (cursor.len && !ag_task_id_valid(cursor.p, cursor.len)) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                           "bad_request", "cursor must be "
                                           "the \"next\" of a previous page");
    }

    limit = NGX_HTTP_AGENTGOV_API_LIMIT;

    if (v[3].len) {
        n = (v[3].len <= 9) ? ngx_atoi(v[3].data, v[3].len) : NGX_ERROR;

        if (n == NGX_ERROR || n < 1) {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                               "bad_request", "limit must be "
                                               "a number from 1 to 1000");
        }

        limit = ngx_min((ngx_uint_t) n, NGX_HTTP_AGENTGOV_API_LIMIT_MAX);
    }

    list.items = json_array();
    list.now = api->now;
    list.failed = 0;

    out = ngx_http_agentgov_api_json(api->r, json_object());

    if (out == NULL) {
        json_decref(list.items);
        return ngx_http_agentgov_api_internal(api, "list");
    }

    if (json_object_set_new(out, "items", list.items) != 0) {
        return ngx_http_agentgov_api_internal(api, "list");
    }

    ngx_memzero(next, sizeof(next));

    rc = ngx_http_agentgov_store_task_list(api->store, agent, state, cursor,
                                           limit, api->now,
                                           ngx_http_agentgov_api_list_item,
                                           &list, next);

    if (rc != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_api_store_error(api, rc);
    }

    if (list.failed) {
        return ngx_http_agentgov_api_internal(api, "list");
    }

    next[AG_TASK_ID_LEN] = '\0';

    if (next[0]
        && json_object_set_new(out, "next", json_string((char *) next)) != 0)
    {
        return ngx_http_agentgov_api_internal(api, "list");
    }

    return ngx_http_agentgov_send_json(api->r, NGX_HTTP_OK, out);
}


/* called by the store, possibly under its lock: memory only, no I/O */

static void
ngx_http_agentgov_api_list_item(void *data, const ag_task_t *t)
{
    ngx_http_agentgov_api_list_t *list = data;

    if (list->failed) {
        return;
    }

    if (json_array_append_new(list->items, ag_task_to_json(t, list->now))
        != 0)
    {
        list->failed = 1;
    }
}


/* --- GET / DELETE v1/tasks/<id> ------------------------------------------ */

static ngx_int_t
ngx_http_agentgov_api_get(ngx_http_agentgov_api_t *api)
{
    u_char     *buf;
    json_t     *out;
    ngx_int_t   rc;
    ag_task_t   t;

    buf = ngx_pnalloc(api->r->pool, NGX_HTTP_AGENTGOV_API_TASK_BUF);
    if (buf == NULL) {
        return ngx_http_agentgov_api_internal(api, "get");
    }

    rc = ngx_http_agentgov_api_fetch(api, &t, buf);
    if (rc != NGX_OK) {
        return rc;
    }

    out = ngx_http_agentgov_api_json(api->r, ag_task_to_json(&t, api->now));
    if (out == NULL) {
        return ngx_http_agentgov_api_internal(api, "get");
    }

    return ngx_http_agentgov_send_json(api->r, NGX_HTTP_OK, out);
}


/*
 * Ending is idempotent: a task that already ended, was revoked or expired
 * is answered 204 as well, so that an agent's cleanup can always retry.
 */

static ngx_int_t
ngx_http_agentgov_api_end(ngx_http_agentgov_api_t *api)
{
    u_char                        *buf;
    ngx_str_t                      who;
    ngx_int_t                      rc;
    ag_task_t                      t;
    ngx_uint_t                     count;
    ngx_http_agentgov_store_rc_e   src;
    static const char             *none[] = { NULL };

    rc = ngx_http_agentgov_api_body_keys(api, none);
    if (rc != NGX_OK) {
        return rc;
    }

    buf = ngx_pnalloc(api->r->pool, NGX_HTTP_AGENTGOV_API_TASK_BUF);
    if (buf == NULL) {
        return ngx_http_agentgov_api_internal(api, "end");
    }

    rc = ngx_http_agentgov_api_fetch(api, &t, buf);
    if (rc != NGX_OK) {
        return rc;
    }

    count = 0;

    src = ngx_http_agentgov_store_task_end(api->store, t.id, AG_TASK_ENDED,
                                           api->now, &count);

    if (src != NGX_AGENTGOV_STORE_OK && src != NGX_AGENTGOV_STORE_NOT_LIVE
        && src != NGX_AGENTGOV_STORE_NOT_FOUND)
    {
        return ngx_http_agentgov_api_store_error(api, src);
    }

    if (src == NGX_AGENTGOV_STORE_OK && api->ctx->agent == NULL) {
        ngx_http_agentgov_api_who(api, &who);

        ngx_log_error(NGX_LOG_NOTICE, api->r->connection->log, 0,
                      "agentgov: task %*s of agent \"%*s\" ended by admin "
                      "\"%V\" (%ui tasks ended)", t.id.len, t.id.p,
                      t.agent.len, t.agent.p, &who, count);
    }

    if (src == NGX_AGENTGOV_STORE_OK) {
        /* authority taken away stays away, recorded or not */
        (void) ngx_http_agentgov_api_audit(api, &t, NULL, NULL, NULL);
    }

    return NGX_HTTP_NO_CONTENT;
}


/* --- POST v1/tasks/<id>/renew -------------------------------------------- */

static ngx_int_t
ngx_http_agentgov_api_renew(ngx_http_agentgov_api_t *api)
{
    char                          err[256], *tok;
    u_char                       *buf, *pbuf, exp[32];
    json_t                       *out, *ttl;
    int64_t                       ttl_req, expires, old_expires;
    ag_str_t                      cnf;
    ngx_int_t                     rc;
    ag_task_t                     t, parent, *pp;
    ag_task_error_t               e;
    ngx_http_agentgov_store_rc_e  src;
    static const char            *keys[] = { "ttl", NULL };

    rc = ngx_http_agentgov_api_body_keys(api, keys);
    if (rc != NGX_OK) {
        return rc;
    }

    ttl_req = 0;
    ttl = api->body ? json_object_get(api->body, "ttl") : NULL;

    if (ttl) {
        ttl_req = json_is_string(ttl)
                  ? ag_duration_parse(json_string_value(ttl),
                                      json_string_length(ttl))
                  : -1;

        if (ttl_req <= 0) {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                               "bad_request", "ttl must be a "
                                               "duration such as \"10m\"");
        }
    }

    buf = ngx_pnalloc(api->r->pool, 2 * NGX_HTTP_AGENTGOV_API_TASK_BUF);
    if (buf == NULL) {
        return ngx_http_agentgov_api_internal(api, "renew");
    }

    pbuf = buf + NGX_HTTP_AGENTGOV_API_TASK_BUF;

    rc = ngx_http_agentgov_api_fetch(api, &t, buf);
    if (rc != NGX_OK) {
        return rc;
    }

    /* a token bound to a certificate is renewed only by that certificate,
       or a stolen agent JWT could keep a bound task alive */

    cnf = ngx_http_agentgov_api_cnf(api);

    if (t.cnf.len
        && (cnf.len != t.cnf.len
            || ngx_strncasecmp((u_char *) cnf.p, (u_char *) t.cnf.p, cnf.len)
               != 0))
    {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN, "denied",
                                           "the task is bound to another "
                                           "client certificate");
    }

    rc = ngx_http_agentgov_api_suspended(api);
    if (rc != NGX_OK) {
        return rc;
    }

    if (t.state != AG_TASK_LIVE) {
        return ngx_http_agentgov_api_not_live(api, t.state, "the task");
    }

    pp = NULL;

    if (t.parent.len) {
        ngx_memzero(&parent, sizeof(ag_task_t));

        src = ngx_http_agentgov_store_task_get(api->store, t.parent, &parent,
                                               pbuf,
                                               NGX_HTTP_AGENTGOV_API_TASK_BUF,
                                               api->now);

        if (src == NGX_AGENTGOV_STORE_NOT_FOUND
            || (src == NGX_AGENTGOV_STORE_OK && parent.state != AG_TASK_LIVE))
        {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                               "task_revoked", "the parent "
                                               "task is no longer live");
        }

        if (src != NGX_AGENTGOV_STORE_OK) {
            return ngx_http_agentgov_api_store_error(api, src);
        }

        pp = &parent;
    }

    ngx_memzero(&e, sizeof(ag_task_error_t));

    if (ag_task_plan_renew(api->amcf->policy, &t, pp, ttl_req, api->now,
                           &expires, &e)
        != 0)
    {
        return ngx_http_agentgov_api_error(api, e.status ? e.status : 400,
                                           e.code ? e.code : "bad_request",
                                           "%s", e.message);
    }

    old_expires = t.expires;
    t.expires = expires;

    if (ag_task_token_mint(api->amcf->task_key,
                           ngx_http_agentgov_api_issuer(api), &t, api->now,
                           &tok, err, sizeof(err))
        != 0)
    {
        ngx_log_error(NGX_LOG_ERR, api->r->connection->log, 0,
                      "agentgov: cannot mint a task token: %s", err);

        return ngx_http_agentgov_api_error(api, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "gateway_error", "cannot mint the "
                                           "task token");
    }

    out = ngx_http_agentgov_api_json(api->r, json_object());

    if (out == NULL
        || json_object_set_new(out, "token", json_string(tok)) != 0)
    {
        ngx_explicit_memzero(tok, ngx_strlen(tok));
        free(tok);
        return ngx_http_agentgov_api_internal(api, "renew");
    }

    ngx_explicit_memzero(tok, ngx_strlen(tok));
    free(tok);

    ag_time_rfc3339(expires, (char *) exp, sizeof(exp));

    if (json_object_set_new(out, "expires_at", json_string((char *) exp))
        != 0)
    {
        return ngx_http_agentgov_api_internal(api, "renew");
    }

    src = ngx_http_agentgov_store_task_renew(api->store, t.id, expires,
                                             api->now);

    if (src == NGX_AGENTGOV_STORE_NOT_LIVE
        || src == NGX_AGENTGOV_STORE_NOT_FOUND)
    {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                           "task_revoked", "the task ended "
                                           "while it was renewed");
    }

    if (src != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_api_store_error(api, src);
    }

    if (ngx_http_agentgov_api_audit(api, &t, NULL, NULL, NULL) != NGX_OK) {
        (void) ngx_http_agentgov_store_task_renew(api->store, t.id,
                                                  old_expires, api->now);
        return ngx_http_agentgov_api_unrecorded(api);
    }

    return ngx_http_agentgov_send_json(api->r, NGX_HTTP_OK, out);
}


/* --- the kill switch ----------------------------------------------------- */

static ngx_int_t
ngx_http_agentgov_api_suspend(ngx_http_agentgov_api_t *api, ngx_uint_t on)
{
    json_t                        *out;
    ag_str_t                       name;
    ngx_str_t                      who;
    ngx_int_t                      rc;
    ngx_uint_t                     count;
    const ag_agent_t              *agent;
    ngx_http_agentgov_store_rc_e   src;
    static const char             *none[] = { NULL };

    rc = ngx_http_agentgov_api_body_keys(api, none);
    if (rc != NGX_OK) {
        return rc;
    }

    agent = ag_policy_agent_by_name(api->amcf->policy,
                                    (const char *) api->arg.data,
                                    api->arg.len);
    if (agent == NULL) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no agent \"%V\" in "
                                           "the policy", &api->arg);
    }

    name.p = agent->name;
    name.len = ngx_strlen(agent->name);
    count = 0;

    src = ngx_http_agentgov_store_agent_suspend(api->store, name, on,
                                                api->now, &count);
    if (src != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_api_store_error(api, src);
    }

    ngx_http_agentgov_api_who(api, &who);

    ngx_log_error(NGX_LOG_NOTICE, api->r->connection->log, 0,
                  "agentgov: agent \"%s\" %s by \"%V\" (%ui tasks revoked)",
                  agent->name, on ? "suspended" : "resumed", &who, count);

    if (ngx_http_agentgov_api_audit(api, NULL, agent->name, NULL, NULL)
        != NGX_OK && !on)
    {
        (void) ngx_http_agentgov_store_agent_suspend(api->store, name, 1,
                                                     api->now, NULL);
        return ngx_http_agentgov_api_unrecorded(api);
    }

    out = ngx_http_agentgov_api_json(api->r, json_object());

    if (out == NULL
        || json_object_set_new(out, "agent", json_string(agent->name)) != 0
        || json_object_set_new(out, "suspended", json_boolean(on)) != 0
        || json_object_set_new(out, "tasks_revoked",
                               json_integer((json_int_t) count)) != 0)
    {
        return ngx_http_agentgov_api_internal(api, "suspend");
    }

    return ngx_http_agentgov_send_json(api->r, NGX_HTTP_OK, out);
}


static ngx_int_t
ngx_http_agentgov_api_stop(ngx_http_agentgov_api_t *api, ngx_uint_t on)
{
    json_t                        *out;
    ngx_str_t                      who;
    ngx_int_t                      rc;
    ngx_uint_t                     count;
    ngx_http_agentgov_store_rc_e   src;
    static const char             *none[] = { NULL };

    rc = ngx_http_agentgov_api_body_keys(api, none);
    if (rc != NGX_OK) {
        return rc;
    }

    count = 0;

    src = ngx_http_agentgov_store_stop(api->store, on, api->now, &count);
    if (src != NGX_AGENTGOV_STORE_OK) {
        return ngx_http_agentgov_api_store_error(api, src);
    }

    ngx_http_agentgov_api_who(api, &who);

    ngx_log_error(NGX_LOG_NOTICE, api->r->connection->log, 0,
                  "agentgov: all agents %s by \"%V\" (%ui tasks revoked)",
                  on ? "stopped" : "started", &who, count);

    if (ngx_http_agentgov_api_audit(api, NULL, NULL, NULL, NULL) != NGX_OK
        && !on)
    {
        (void) ngx_http_agentgov_store_stop(api->store, 1, api->now, NULL);
        return ngx_http_agentgov_api_unrecorded(api);
    }

    out = ngx_http_agentgov_api_json(api->r, json_object());

    if (out == NULL
        || json_object_set_new(out, "stopped", json_boolean(on)) != 0
        || json_object_set_new(out, "tasks_revoked",
                               json_integer((json_int_t) count)) != 0)
    {
        return ngx_http_agentgov_api_internal(api, "stop");
    }

    return ngx_http_agentgov_send_json(api->r, NGX_HTTP_OK, out);
}


/* --- helpers ------------------------------------------------------------- */

/*
 * The task the route names, if the caller may see it. An agent is told the
 * same for a task of another agent and for an id that does not exist, so
 * that it learns nothing about others' tasks; admins and auditors get 404
 * for an unknown id.
 */

static ngx_int_t
ngx_http_agentgov_api_fetch(ngx_http_agentgov_api_t *api, ag_task_t *t,
    u_char *buf)
{
    ag_str_t                      id, agent;
    ngx_http_agentgov_store_rc_e  rc;

    if (!ag_task_id_valid((const char *) api->arg.data, api->arg.len)) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no such task");
    }

    id.p = (const char *) api->arg.data;
    id.len = api->arg.len;

    ngx_memzero(t, sizeof(ag_task_t));

    rc = ngx_http_agentgov_store_task_get(api->store, id, t, buf,
                                          NGX_HTTP_AGENTGOV_API_TASK_BUF,
                                          api->now);

    if (rc != NGX_AGENTGOV_STORE_OK && rc != NGX_AGENTGOV_STORE_NOT_FOUND) {
        return ngx_http_agentgov_api_store_error(api, rc);
    }

    if (api->ctx->agent) {
        agent = ngx_http_agentgov_api_agent(api);

        if (rc == NGX_AGENTGOV_STORE_NOT_FOUND
            || t->agent.len != agent.len
            || ngx_strncmp(t->agent.p, agent.p, agent.len) != 0)
        {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN,
                                               "denied", "no task of agent "
                                               "\"%s\" has this id",
                                               api->ctx->agent->name);
        }

        return NGX_OK;
    }

    if (rc == NGX_AGENTGOV_STORE_NOT_FOUND) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_NOT_FOUND,
                                           "not_found", "no such task");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_api_not_live(ngx_http_agentgov_api_t *api,
    ag_task_state_t state, const char *what)
{
    if (state == AG_TASK_EXPIRED) {
        return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                           "task_expired", "%s has expired",
                                           what);
    }

    return ngx_http_agentgov_api_error(api, NGX_HTTP_UNAUTHORIZED,
                                       "task_revoked", "%s has %s", what,
                                       state == AG_TASK_ENDED
                                       ? "ended" : "been revoked");
}


static ngx_int_t
ngx_http_agentgov_api_store_error(ngx_http_agentgov_api_t *api,
    ngx_http_agentgov_store_rc_e rc)
{
    switch (rc) {

    case NGX_AGENTGOV_STORE_SUSPENDED:
        return ngx_http_agentgov_api_error(api, NGX_HTTP_FORBIDDEN,
                                           "agent_suspended", "the agent is "
                                           "suspended");

    case NGX_AGENTGOV_STORE_FULL:
        /* the store has logged it */
        return ngx_http_agentgov_api_error(api, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "gateway_error", "the gateway's "
                                           "state is full (agentgov_zone)");

    default:
        ngx_log_error(NGX_LOG_ERR, api->r->connection->log, 0,
                      "agentgov: state store failed (%d)", (int) rc);

        return ngx_http_agentgov_api_error(api, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "gateway_error", "the gateway's "
                                           "state store failed");
    }
}


/* A write other than a declaration: only the listed keys (NULL-ended). */

static ngx_int_t
ngx_http_agentgov_api_body_keys(ngx_http_agentgov_api_t *api,
    const char **keys)
{
    json_t       *value;
    const char   *key, **k;

    if (api->body == NULL) {
        return NGX_OK;
    }

    json_object_foreach(api->body, key, value) {
        for (k = keys; *k; k++) {
            if (ngx_strcmp(key, *k) == 0) {
                break;
            }
        }

        if (*k == NULL) {
            return ngx_http_agentgov_api_error(api, NGX_HTTP_BAD_REQUEST,
                                               "bad_request", "unknown key "
                                               "\"%s\" in the body", key);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_agentgov_api_suspended(ngx_http_agentgov_api_t *api)
{
    ngx_http_agentgov_store_rc_e  rc;

    rc = ngx_http_agentgov_store_agent_check(api->store,
                                             ngx_http_agentgov_api_agent(api));

    if (rc == NGX_AGENTGOV_STORE_OK) {
        return NGX_OK;
    }

    return ngx_http_agentgov_api_store_error(api, rc);
}


/*
 * A refusal (SPEC section 9). ngx_http_agentgov_refuse() finalizes the
 * request itself, so a reference is taken for it and NGX_DONE returned for
 * the caller's own finalization.
 */

static ngx_int_t
ngx_http_agentgov_api_error(ngx_http_agentgov_api_t *api, ngx_uint_t status,
    const char *code, const char *fmt, ...)
{
    u_char                       *p;
    va_list                       args;
    ngx_table_elt_t              *h;
    ngx_http_request_t           *r;
    ngx_http_agentgov_refusal_t   ref;

    r = api->r;

    ref.status = status;
    ref.code = code;
    ref.decision = "deny";
    ref.retry_after = 0;

    ref.message.data = ngx_pnalloc(r->pool, 512);
    if (ref.message.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(ref.message.data, ref.message.data + 512, fmt, args);
    va_end(args);

    ref.message.len = p - ref.message.data;

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))
        && api->route != NGX_HTTP_AGENTGOV_API_NONE
        && api->route <= NGX_HTTP_AGENTGOV_API_START
        && status != NGX_HTTP_NOT_ALLOWED)
    {
        /* a refused write is a decision too; refused either way */
        (void) ngx_http_agentgov_api_audit(api, NULL, NULL, code,
                                           &ref.message);
    }

    if (status == NGX_HTTP_NOT_ALLOWED) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value.data = (u_char *) api->allow;
        h->value.len = ngx_strlen(api->allow);
    }

    r->main->count++;

    return ngx_http_agentgov_refuse(r, api->ctx, &ref);
}


/*
 * The record of a control API write (task and agent events): t is the task
 * it concerns, agent the agent (suspend, resume), error the refusal's code
 * or NULL. NGX_ERROR when it could not be written under fail=closed.
 */

static ngx_int_t
ngx_http_agentgov_api_audit(ngx_http_agentgov_api_t *api, const ag_task_t *t,
    const char *agent, const char *error, ngx_str_t *reason)
{
    ngx_str_t            who;
    ag_audit_rec_t       rec;
    ngx_http_request_t  *r;

    r = api->r;

    ngx_memzero(&rec, sizeof(ag_audit_rec_t));

    /* the routes that write, in route order from TASKS to START */
    static const char *const  ops[][2] = {
        { "task", "declare" }, { "task", "end" }, { "task", "renew" },
        { "agent", "suspend" }, { "agent", "resume" }, { "agent", "stop" },
        { "agent", "start" }
    };

    if (api->route < NGX_HTTP_AGENTGOV_API_TASKS
        || api->route > NGX_HTTP_AGENTGOV_API_START)
    {
        return NGX_OK;
    }

    rec.event = ops[api->route - NGX_HTTP_AGENTGOV_API_TASKS][0];
    rec.op.p = ops[api->route - NGX_HTTP_AGENTGOV_API_TASKS][1];

    if (api->route == NGX_HTTP_AGENTGOV_API_TASKS && t && t->parent.len) {
        rec.op.p = "delegate";
    }

    rec.op.len = ngx_strlen(rec.op.p);

    if (t) {
        rec.task = t->id;
        rec.agent = t->agent;
        rec.owner = t->owner;
        rec.intent = t->intent;
        rec.chain = t->chain;

    } else if (agent) {
        rec.agent.p = agent;
        rec.agent.len = ngx_strlen(agent);

    } else if (api->ctx->agent) {
        rec.agent.p = api->ctx->agent->name;
        rec.agent.len = ngx_strlen(api->ctx->agent->name);

    } else if (api->route == NGX_HTTP_AGENTGOV_API_SUSPEND
               || api->route == NGX_HTTP_AGENTGOV_API_RESUME)
    {
        rec.agent.p = (const char *) api->arg.data;
        rec.agent.len = api->arg.len;
    }

    if (api->route == NGX_HTTP_AGENTGOV_API_TASK && t == NULL) {
        rec.task.p = (const char *) api->arg.data;
        rec.task.len = api->arg.len;
    }

    /* who acted, when it is not the agent itself: a person (an admin), or
       a caller whose identity was refused */
    if (api->ctx->person || api->ctx->agent == NULL) {
        ngx_http_agentgov_api_who(api, &who);
        rec.by.p = (const char *) who.data;
        rec.by.len = who.len;
    }

    rec.method.p = (const char *) r->method_name.data;
    rec.method.len = r->method_name.len;
    rec.host.p = (const char *) r->headers_in.server.data;
    rec.host.len = r->headers_in.server.len;
    rec.path.p = (const char *) r->uri.data;
    rec.path.len = r->uri.len;

    rec.decision.p = error ? "deny" : "allow";
    rec.decision.len = ngx_strlen(rec.decision.p);

    if (error) {
        rec.error.p = error;
        rec.error.len = ngx_strlen(error);
    }

    if (reason) {
        rec.reason.p = (const char *) reason->data;
        rec.reason.len = reason->len;
    }

    return ngx_http_agentgov_audit_event(r, &rec);
}


/* a grant whose record could not be written was taken back */

static ngx_int_t
ngx_http_agentgov_api_unrecorded(ngx_http_agentgov_api_t *api)
{
    return ngx_http_agentgov_api_error(api, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "gateway_error", "the audit log "
                                       "cannot be written");
}


/*
 * The query's parameters, strictly: each of the n names in keys at most
 * once, URI-decoded into v[i] (empty when absent); any other name is an
 * error, since a misspelt filter must not widen what is shown. NGX_OK;
 * NGX_DECLINED (unknown) or NGX_BUSY (given twice) with the name in *bad;
 * NGX_ERROR.
 */

ngx_int_t
ngx_http_agentgov_query(ngx_http_request_t *r, ngx_str_t *keys, ngx_uint_t n,
    ngx_str_t *v, ngx_str_t *bad)
{
    u_char      *p, *last, *amp, *eq, *dst, *src;
    ngx_str_t    name, value;
    ngx_uint_t   i, seen;

    ngx_memzero(v, n * sizeof(ngx_str_t));
    seen = 0;

    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        eq = ngx_strlchr(p, amp, '=');

        name.data = p;
        name.len = (eq ? eq : amp) - p;
        value.data = eq ? eq + 1 : amp;
        value.len = amp - value.data;

        p = amp + 1;

        if (name.len == 0 && value.len == 0) {
            continue;
        }

        for (i = 0; i < n; i++) {
            if (name.len == keys[i].len
                && ngx_strncmp(name.data, keys[i].data, name.len) == 0)
            {
                break;
            }
        }

        *bad = name;

        if (i == n) {
            return NGX_DECLINED;
        }

        if (seen & (1 << i)) {
            return NGX_BUSY;
        }

        seen |= 1 << i;

        dst = ngx_pnalloc(r->pool, value.len + 1);
        if (dst == NULL) {
            return NGX_ERROR;
        }

        v[i].data = dst;
        src = value.data;
        ngx_unescape_uri(&dst, &src, value.len, NGX_UNESCAPE_URI);
        v[i].len = dst - v[i].data;
    }

    return NGX_OK;
}


/* The approval API: the identity and the route's hold id, to its file. */

static ngx_int_t
ngx_http_agentgov_api_approvals(ngx_http_agentgov_api_t *api)
{
    ngx_str_t      who, none;
    ag_identity_t  id;

    ngx_http_agentgov_identity(api->ctx, &id);
    ngx_str_null(&none);

    if (api->r->method == NGX_HTTP_POST) {
        ngx_http_agentgov_api_person(api, &who);

        return ngx_http_agentgov_approvals_post(api->r, api->ctx, &api->arg,
                                                &id, &who, api->body);
    }

    return ngx_http_agentgov_approvals_get(api->r, api->ctx,
                                           api->route
                                           == NGX_HTTP_AGENTGOV_API_APPROVAL
                                           ? &api->arg : &none, &id,
                                           api->admin || api->auditor);
}


/*
 * A person's stable name for decisions: "iss|sub" of a JWT, or the SPIFFE
 * ID, so that two issuers' "alice" are two people.
 */

static void
ngx_http_agentgov_api_person(ngx_http_agentgov_api_t *api, ngx_str_t *who)
{
    u_char  *p;
    json_t  *iss, *sub;

    if (api->ctx->spiffe_id) {
        who->data = api->ctx->spiffe_id;
        who->len = ngx_strlen(who->data);
        return;
    }

    iss = api->ctx->claims ? json_object_get(api->ctx->claims, "iss") : NULL;
    sub = api->ctx->claims ? json_object_get(api->ctx->claims, "sub") : NULL;

    if (!json_is_string(iss) || !json_is_string(sub)) {
        ngx_str_null(who);
        return;
    }

    p = ngx_pnalloc(api->r->pool, json_string_length(iss) + 1
                                  + json_string_length(sub));
    if (p == NULL) {
        ngx_str_null(who);
        return;
    }

    who->data = p;
    p = ngx_cpymem(p, json_string_value(iss), json_string_length(iss));
    *p++ = '|';
    p = ngx_cpymem(p, json_string_value(sub), json_string_length(sub));
    who->len = p - who->data;
}


/* an internal failure still answers in the JSON of SPEC section 9 */

static ngx_int_t
ngx_http_agentgov_api_internal(ngx_http_agentgov_api_t *api, const char *what)
{
    ngx_log_error(NGX_LOG_ERR, api->r->connection->log, 0,
                  "agentgov: control API failed (%s)", what);

    return ngx_http_agentgov_api_error(api, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "gateway_error", "internal error");
}


static ag_str_t
ngx_http_agentgov_api_agent(ngx_http_agentgov_api_t *api)
{
    ag_str_t  s;

    s.p = api->ctx->agent->name;
    s.len = ngx_strlen(s.p);

    return s;
}


/* the caller's certificate thumbprint, when a certificate proved who it is */

static ag_str_t
ngx_http_agentgov_api_cnf(ngx_http_agentgov_api_t *api)
{
    ag_str_t  s;

    if (api->ctx->spiffe_id && api->ctx->cnf[0]) {
        s.p = (const char *) api->ctx->cnf;
        s.len = AG_TASK_CNF_LEN;

    } else {
        s.p = "";
        s.len = 0;
    }

    return s;
}


/* who acted, for the error log: a name, never a credential */

static void
ngx_http_agentgov_api_who(ngx_http_agentgov_api_t *api, ngx_str_t *who)
{
    json_t  *sub;

    if (api->ctx->agent) {
        who->data = (u_char *) api->ctx->agent->name;
        who->len = ngx_strlen(who->data);
        return;
    }

    if (api->ctx->spiffe_id) {
        who->data = api->ctx->spiffe_id;
        who->len = ngx_strlen(who->data);
        return;
    }

    sub = api->ctx->claims ? json_object_get(api->ctx->claims, "sub") : NULL;

    if (json_is_string(sub)) {
        who->data = (u_char *) json_string_value(sub);
        who->len = json_string_length(sub);
        return;
    }

    ngx_str_set(who, "unknown");
}


/* the iss of task tokens, NUL-terminated for the engine */

static const char *
ngx_http_agentgov_api_issuer(ngx_http_agentgov_api_t *api)
{
    u_char     *p;
    ngx_str_t  *iss;

    iss = &api->amcf->issuer;

    if (iss->len == 0) {
        return "agentgov";
    }

    p = ngx_pnalloc(api->r->pool, iss->len + 1);
    if (p == NULL) {
        /* a wrong iss fails closed: the token would not verify */
        return "";
    }

    (void) ngx_cpystrn(p, iss->data, iss->len + 1);

    return (const char *) p;
}


/*
 * A successful JSON answer: one line and a newline, never cached (task
 * tokens are credentials). The JSON stays the caller's.
 */

ngx_int_t
ngx_http_agentgov_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json)
{
    char    *text;
    u_char  *p;
    size_t   len;

    text = json_dumps(json, JSON_COMPACT);
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        ngx_explicit_memzero(text, len);
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, text, len);
    p[len] = '\n';

    /* the text may hold a task token */
    ngx_explicit_memzero(text, len);
    free(text);

    return ngx_http_agentgov_send(r, status, &ngx_http_agentgov_api_json_type,
                                  p, len + 1);
}


/* An answer of the API: never cached, it shows live state. */

ngx_int_t
ngx_http_agentgov_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *data, size_t len)
{
    ngx_table_elt_t           *h;
    ngx_http_complex_value_t   cv;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value.data = data;
    cv.value.len = len;

    return ngx_http_send_response(r, status, type, &cv);
}


/* JSON that lives as long as the request */

static json_t *
ngx_http_agentgov_api_json(ngx_http_request_t *r, json_t *json)
{
    ngx_pool_cleanup_t  *cln;

    if (json == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(json);
        return NULL;
    }

    cln->handler = ngx_http_agentgov_json_cleanup;
    cln->data = json;

    return json;
}

