/*
 * What the gateway answers itself (the JSON errors of SPEC section 9) and what
 * it changes in the request headers before a call leaves.
 */

#include "ngx_http_agentgov.h"


static ngx_str_t  ngx_http_agentgov_json_type = ngx_string("application/json");


/*
 * Answer with {"error", "message", "rule", "request_id"} and Agent-Decision,
 * finalize, and tell the phase engine the request is taken care of.
 */

ngx_int_t
ngx_http_agentgov_refuse(ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx,
    ngx_http_agentgov_refusal_t *ref)
{
    char                      *text;
    json_t                    *obj;
    ngx_int_t                  rc;
    ngx_table_elt_t           *h;
    ngx_http_complex_value_t   cv;

    if (ctx->mcp || ctx->mcp_error) {
        /* an MCP client hands JSON-RPC answers to its model */
        rc = ngx_http_agentgov_mcp_refuse(r, ctx, ref);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (ctx->decision_name.len == 0) {
        ctx->decision_name.data = (u_char *) ref->decision;
        ctx->decision_name.len = ngx_strlen(ref->decision);
    }

    obj = json_object();
    if (obj == NULL) {
        goto failed;
    }

    if (json_object_set_new(obj, "error", json_string(ref->code)) != 0
        || json_object_set_new(obj, "message",
                               json_stringn((char *) ref->message.data,
                                            ref->message.len)) != 0
        || (ctx->rule.len
            && json_object_set_new(obj, "rule",
                                   json_stringn((char *) ctx->rule.data,
                                                ctx->rule.len)) != 0)
        || json_object_set_new(obj, "request_id",
                               json_stringn((char *) ctx->request_id,
                                            sizeof(ctx->request_id))) != 0)
    {
        json_decref(obj);
        goto failed;
    }

    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);

    if (text == NULL) {
        goto failed;
    }

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value.len = ngx_strlen(text);
    cv.value.data = ngx_pnalloc(r->pool, cv.value.len + 1);

    if (cv.value.data == NULL) {
        free(text);
        goto failed;
    }

    /* a newline makes the answer friendlier to curl and to line readers */
    ngx_memcpy(cv.value.data, text, cv.value.len);
    cv.value.data[cv.value.len++] = '\n';
    free(text);

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        goto failed;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Agent-Decision");
    h->value.data = (u_char *) ref->decision;
    h->value.len = ngx_strlen(ref->decision);

    if (ref->retry_after > 0) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            goto failed;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (h->value.data == NULL) {
            goto failed;
        }

        h->value.len = ngx_sprintf(h->value.data, "%L", ref->retry_after)
                       - h->value.data;
    }

    rc = ngx_http_send_response(r, ref->status, &ngx_http_agentgov_json_type,
                                &cv);
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;

failed:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    return NGX_DONE;
}


/* Fill a refusal with a fixed message; NGX_DECLINED, for callers to return. */

ngx_int_t
ngx_http_agentgov_refusal(ngx_http_agentgov_refusal_t *ref, ngx_uint_t status,
    const char *code, const char *message)
{
    ref->status = status;
    ref->code = code;
    ref->decision = "deny";
    ref->message.data = (u_char *) message;
    ref->message.len = ngx_strlen(message);
    ref->retry_after = 0;

    return NGX_DECLINED;
}


ngx_table_elt_t *
ngx_http_agentgov_find_header(ngx_http_request_t *r, const char *name,
    size_t len, ngx_uint_t *count)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    found = NULL;
    *count = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == len
                && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
            {
                if (found == NULL) {
                    found = &h[i];
                }

                (*count)++;
            }
        }
    }

    return found;
}


/*
 * A content handler's refusal with a fixed message: refuse() finalizes the
 * request itself, so it takes a reference for the caller's finalization of
 * the NGX_DONE it returns.
 */

ngx_int_t
ngx_http_agentgov_refuse_content(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_uint_t status, const char *code,
    const char *message)
{
    ngx_http_agentgov_refusal_t  ref;

    (void) ngx_http_agentgov_refusal(&ref, status, code, message);

    r->main->count++;

    return ngx_http_agentgov_refuse(r, ctx, &ref);
}


/* A pool cleanup for jansson values the request (or the cycle) owns. */

void
ngx_http_agentgov_json_cleanup(void *data)
{
    json_decref(data);
}
