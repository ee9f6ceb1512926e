/*
 * $agentgov_* variables (SPEC section 2), for the rest of the configuration
 * and for access logs. None is cacheable: their values change as the request
 * moves through the gateway.
 */

#include "ngx_http_agentgov.h"


typedef enum {
    AG_VAR_AGENT = 0,
    AG_VAR_TASK,
    AG_VAR_INTENT,
    AG_VAR_TOOL,
    AG_VAR_DECISION,
    AG_VAR_RULE,
    AG_VAR_REQUEST_ID,
    AG_VAR_APPROVAL,
    AG_VAR_UPSTREAM,
    AG_VAR_URI,
    AG_VAR_STRIPPED
} ngx_http_agentgov_var_e;


static ngx_int_t ngx_http_agentgov_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_agentgov_vars[] = {

    { ngx_string("agentgov_agent"), NULL, ngx_http_agentgov_variable,
      AG_VAR_AGENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_task"), NULL, ngx_http_agentgov_variable,
      AG_VAR_TASK, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_intent"), NULL, ngx_http_agentgov_variable,
      AG_VAR_INTENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_tool"), NULL, ngx_http_agentgov_variable,
      AG_VAR_TOOL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_decision"), NULL, ngx_http_agentgov_variable,
      AG_VAR_DECISION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_rule"), NULL, ngx_http_agentgov_variable,
      AG_VAR_RULE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_request_id"), NULL, ngx_http_agentgov_variable,
      AG_VAR_REQUEST_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_approval"), NULL, ngx_http_agentgov_variable,
      AG_VAR_APPROVAL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_upstream"), NULL, ngx_http_agentgov_variable,
      AG_VAR_UPSTREAM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_uri"), NULL, ngx_http_agentgov_variable,
      AG_VAR_URI, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("agentgov_stripped"), NULL, ngx_http_agentgov_variable,
      AG_VAR_STRIPPED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_agentgov_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_agentgov_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* the names stripped from the call, comma-separated (never a value) */

static ngx_int_t
ngx_http_agentgov_stripped_variable(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_variable_value_t *v)
{
    u_char      *p;
    size_t       len;
    ag_str_t    *s;
    ngx_uint_t   i;

    if (ctx->stripped == NULL || ctx->stripped->nelts == 0) {
        return NGX_OK;
    }

    s = ctx->stripped->elts;
    len = 0;

    for (i = 0; i < ctx->stripped->nelts; i++) {
        len += s[i].len + 1;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    for (i = 0; i < ctx->stripped->nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, s[i].p, s[i].len);
    }

    v->len = p - v->data;

    return NGX_OK;
}


static void
ngx_http_agentgov_set_cstr(ngx_http_variable_value_t *v, const char *s)
{
    if (s == NULL) {
        v->not_found = 1;
        return;
    }

    v->data = (u_char *) s;
    v->len = ngx_strlen(s);
}


static ngx_int_t
ngx_http_agentgov_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t                 s;
    ngx_http_agentgov_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_agentgov_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = (u_char *) "";
    v->len = 0;

    ngx_str_null(&s);

    switch (data) {

    case AG_VAR_AGENT:
        ngx_http_agentgov_set_cstr(v, ctx->agent ? ctx->agent->name : NULL);
        return NGX_OK;

    case AG_VAR_TOOL:
        ngx_http_agentgov_set_cstr(v, ctx->tool ? ctx->tool->name : NULL);
        return NGX_OK;

    case AG_VAR_UPSTREAM:
        ngx_http_agentgov_set_cstr(v, ctx->tool ? ctx->tool->upstream : NULL);
        return NGX_OK;

    case AG_VAR_TASK:
        if (ctx->has_task) {
            s.data = (u_char *) ctx->task.id.p;
            s.len = ctx->task.id.len;
        }
        break;

    case AG_VAR_INTENT:
        if (ctx->has_task) {
            s.data = (u_char *) ctx->task.intent.p;
            s.len = ctx->task.intent.len;
        }
        break;

    case AG_VAR_DECISION:
        s = ctx->decision_name;
        break;

    case AG_VAR_RULE:
        s = ctx->rule;
        break;

    case AG_VAR_REQUEST_ID:
        s.data = ctx->request_id;
        s.len = sizeof(ctx->request_id);
        break;

    case AG_VAR_URI:
        s = ctx->uri;
        break;

    case AG_VAR_STRIPPED:
        return ngx_http_agentgov_stripped_variable(r, ctx, v);

    case AG_VAR_APPROVAL:
        s = ctx->approval;
        break;

    default:
        break;
    }

    v->data = s.data ? s.data : (u_char *) "";
    v->len = s.len;

    return NGX_OK;
}
