/*
 * The way back from an MCP tool (SPEC sections 2 and 5): the Mcp-Session-Id
 * its initialize answer carries is bound to the agent and task, and every
 * tools/list result is filtered to the tools this task may call and whose
 * definition is the pinned one.
 *
 * Only answers that can hold a tools/list result are read: the answer to a
 * POST with a tools/list request, and the server's GET stream (a resumed
 * stream may replay one). An application/json answer is gathered whole and
 * filtered once; a text/event-stream is cut into events, each filtered and
 * sent on at once with flush, and only an event's unfinished tail waits.
 * Upstream buffers are copied and marked consumed at once, so that with
 * proxy_buffering off the proxy can reuse its one buffer (NGINX-NOTES).
 * Anything that cannot be read (an encoded answer, JSON that does not parse,
 * an answer or event over NGX_HTTP_AGENTGOV_FILTER_MAX) is replaced by a
 * JSON-RPC error: never passed unfiltered.
 */

#include "ngx_http_agentgov.h"
#include "ngx_http_agentgov_store.h"
#include "ag_audit.h"


#define NGX_HTTP_AGENTGOV_FILTER_MAX   (16 * 1024 * 1024)
#define NGX_HTTP_AGENTGOV_FILTER_BUF   4096

enum {
    NGX_HTTP_AGENTGOV_F_JSON = 1,
    NGX_HTTP_AGENTGOV_F_SSE,
    NGX_HTTP_AGENTGOV_F_REFUSE
};

typedef struct {
    ngx_uint_t                   mode;
    ngx_uint_t                   done;
    const char                  *why;        /* F_REFUSE: the error */
    u_char                      *data;       /* gathered, malloc'd */
    size_t                       len;
    size_t                       cap;
    ngx_chain_t                 *free;
    ngx_chain_t                 *busy;
    ngx_http_request_t          *r;
    ngx_http_agentgov_ctx_t     *ctx;
} ngx_http_agentgov_filter_t;


static ngx_int_t ngx_http_agentgov_filter_session(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_filter_t **f);
static ngx_int_t ngx_http_agentgov_filter_gather(ngx_http_agentgov_filter_t *f,
    ngx_chain_t *in, ngx_uint_t *last, ngx_uint_t *flush);
static ngx_int_t ngx_http_agentgov_filter_emit(ngx_http_agentgov_filter_t *f,
    ngx_chain_t ***ll, const u_char *p, size_t len, ngx_uint_t last);
static ngx_int_t ngx_http_agentgov_filter_refused(
    ngx_http_agentgov_filter_t *f, ngx_chain_t ***ll);
static int ngx_http_agentgov_filter_keep(void *data, ag_str_t name,
    const char *hex);
static ngx_http_agentgov_filter_t *ngx_http_agentgov_filter_new(
    ngx_http_request_t *r, ngx_http_agentgov_ctx_t *ctx);
static void ngx_http_agentgov_filter_cleanup(void *data);


#define ngx_http_agentgov_consume(b)                                          \
    (b)->pos = (b)->last;                                                     \
    (b)->file_pos = (b)->file_last


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_int_t
ngx_http_agentgov_header_filter(ngx_http_request_t *r)
{
    ngx_str_t                    *type;
    ngx_table_elt_t              *enc;
    ngx_http_agentgov_ctx_t      *ctx;
    ngx_http_agentgov_filter_t   *f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_agentgov_module);

    if (r != r->main || ctx == NULL || !ctx->passed || ctx->tool == NULL
        || !ctx->tool->mcp)
    {
        return ngx_http_next_header_filter(r);
    }

    f = NULL;

    if (ngx_http_agentgov_filter_session(r, ctx, &f) != NGX_OK) {
        return NGX_ERROR;
    }

    if (f == NULL
        && (r->headers_out.status != NGX_HTTP_OK
            || !(ctx->mcp_list || r->method == NGX_HTTP_GET)))
    {
        return ngx_http_next_header_filter(r);
    }

    type = &r->headers_out.content_type;

    if (f == NULL) {
        if (type->len >= sizeof("application/json") - 1
            && ngx_strncasecmp(type->data, (u_char *) "application/json",
                               sizeof("application/json") - 1) == 0)
        {
            f = ngx_http_agentgov_filter_new(r, ctx);
            if (f == NULL) {
                return NGX_ERROR;
            }

            f->mode = NGX_HTTP_AGENTGOV_F_JSON;

        } else if (type->len >= sizeof("text/event-stream") - 1
                   && ngx_strncasecmp(type->data,
                                      (u_char *) "text/event-stream",
                                      sizeof("text/event-stream") - 1) == 0)
        {
            f = ngx_http_agentgov_filter_new(r, ctx);
            if (f == NULL) {
                return NGX_ERROR;
            }

            f->mode = NGX_HTTP_AGENTGOV_F_SSE;

        } else {
            /* no MCP client reads tools out of another type */
            return ngx_http_next_header_filter(r);
        }

        enc = r->headers_out.content_encoding;

        if (enc && enc->hash
            && !(enc->value.len == sizeof("identity") - 1
                 && ngx_strncasecmp(enc->value.data, (u_char *) "identity",
                                    enc->value.len) == 0))
        {
            f->mode = NGX_HTTP_AGENTGOV_F_REFUSE;
            f->why = "the tool's answer is encoded and cannot be inspected; "
                     "it must answer in identity encoding";
            enc->hash = 0;
            r->headers_out.content_encoding = NULL;
        }
    }

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_weak_etag(r);

    r->filter_need_in_memory = 1;
    ctx->filter = f;

    return ngx_http_next_header_filter(r);
}


/*
 * The session id in the tool's answer is bound to the agent and task that
 * got it. One the store holds for others is not handed on: the answer is
 * refused (*f set to a refusing filter).
 */

static ngx_int_t
ngx_http_agentgov_filter_session(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx, ngx_http_agentgov_filter_t **f)
{
    ag_str_t                       sid;
    ngx_uint_t                     i;
    ngx_list_part_t               *part;
    ngx_table_elt_t               *h;
    ngx_http_agentgov_store_t     *s;
    ngx_http_agentgov_store_rc_e   rc;

    s = ngx_http_agentgov_store(r);

    if (s == NULL || !ctx->has_task || r->headers_out.status >= 300) {
        return NGX_OK;
    }

    for (part = &r->headers_out.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0
                || h[i].key.len != sizeof("Mcp-Session-Id") - 1
                || ngx_strncasecmp(h[i].key.data, (u_char *) "Mcp-Session-Id",
                                   h[i].key.len) != 0)
            {
                continue;
            }

            sid.p = (const char *) h[i].value.data;
            sid.len = h[i].value.len;

            rc = ngx_http_agentgov_store_session_bind(s, sid, ctx->call.agent,
                                                      ctx->call.task,
                                                      ctx->task.expires,
                                                      ngx_time());
            if (rc == NGX_AGENTGOV_STORE_OK) {
                continue;
            }

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "agentgov: MCP session id of tool \"%s\" %s",
                          ctx->tool->name,
                          rc == NGX_AGENTGOV_STORE_NOT_LIVE
                          ? "is another agent's or task's: answer refused"
                          : "cannot be bound (agentgov_zone full or id too "
                            "long): answer refused");

            *f = ngx_http_agentgov_filter_new(r, ctx);
            if (*f == NULL) {
                return NGX_ERROR;
            }

            (*f)->mode = NGX_HTTP_AGENTGOV_F_REFUSE;
            (*f)->why = "the tool's MCP session cannot be bound to this "
                        "agent and task";

            /* the client must not learn the id */
            h[i].hash = 0;

            r->headers_out.status = NGX_HTTP_OK;
            ngx_str_set(&r->headers_out.content_type, "application/json");
            r->headers_out.content_type_len = r->headers_out.content_type.len;

            return NGX_OK;
        }
    }

    return NGX_OK;
}


static ngx_http_agentgov_filter_t *
ngx_http_agentgov_filter_new(ngx_http_request_t *r,
    ngx_http_agentgov_ctx_t *ctx)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_agentgov_filter_t  *f;

    f = ngx_pcalloc(r->pool, sizeof(ngx_http_agentgov_filter_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (f == NULL || cln == NULL) {
        return NULL;
    }

    f->r = r;
    f->ctx = ctx;

    cln->handler = ngx_http_agentgov_filter_cleanup;
    cln->data = f;

    return f;
}


static void
ngx_http_agentgov_filter_cleanup(void *data)
{
    ngx_http_agentgov_filter_t *f = data;

    free(f->data);
    f->data = NULL;
}


static ngx_int_t
ngx_http_agentgov_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    int                          rc;
    char                        *out;
    size_t                       n, outlen, off;
    ngx_int_t                    rv;
    ngx_uint_t                   last, flush;
    ngx_chain_t                 *head, **ll;
    ngx_http_agentgov_ctx_t     *ctx;
    ngx_http_agentgov_filter_t  *f;

    ctx = ngx_http_get_module_ctx(r, ngx_http_agentgov_module);

    if (r != r->main || ctx == NULL || ctx->filter == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    f = ctx->filter;

    if (f->done) {
        /* what follows the end we sent is dropped */
        for ( /* void */ ; in; in = in->next) {
            ngx_http_agentgov_consume(in->buf);
        }

        return ngx_http_next_body_filter(r, NULL);
    }

    if (ngx_http_agentgov_filter_gather(f, in, &last, &flush) != NGX_OK) {
        return NGX_ERROR;
    }

    head = NULL;
    ll = &head;

    switch (f->mode) {

    case NGX_HTTP_AGENTGOV_F_JSON:

        if (!last) {
            break;
        }

        rc = f->why || f->len == 0 ? -1
             : ag_mcp_filter_message((const char *) f->data, f->len,
                                     ngx_http_agentgov_filter_keep, f, &out,
                                     &outlen);
        if (rc < 0) {
            if (f->why == NULL) {
                f->why = "the tool's answer is not JSON the gateway can read";
            }

            if (ngx_http_agentgov_filter_refused(f, &ll) != NGX_OK) {
                return NGX_ERROR;
            }

            break;
        }

        rv = rc == 0 ? ngx_http_agentgov_filter_emit(f, &ll, f->data, f->len, 1)
                     : ngx_http_agentgov_filter_emit(f, &ll, (u_char *) out,
                                                     outlen, 1);
        if (rc == 1) {
            free(out);
        }

        if (rv != NGX_OK) {
            return NGX_ERROR;
        }

        break;

    case NGX_HTTP_AGENTGOV_F_SSE:

        off = 0;

        while (f->why == NULL
               && (n = ag_sse_event_len((const char *) f->data + off,
                                        f->len - off)))
        {
            rc = ag_mcp_filter_event((const char *) f->data + off, n,
                                     ngx_http_agentgov_filter_keep, f, &out,
                                     &outlen);
            if (rc < 0) {
                f->why = "the tool sent an event that is not JSON the "
                         "gateway can read";
                break;
            }

            rv = rc == 0
                 ? ngx_http_agentgov_filter_emit(f, &ll, f->data + off, n, 0)
                 : ngx_http_agentgov_filter_emit(f, &ll, (u_char *) out,
                                                 outlen, 0);
            if (rc == 1) {
                free(out);
            }

            if (rv != NGX_OK) {
                return NGX_ERROR;
            }

            off += n;
        }

        /* the unfinished event waits for the rest */
        if (off) {
            f->len -= off;
            ngx_memmove(f->data, f->data + off, f->len);
        }

        if (f->why) {
            if (ngx_http_agentgov_filter_refused(f, &ll) != NGX_OK) {
                return NGX_ERROR;
            }

        } else if (last) {
            /* an event cut short at the end is no event (SSE): dropped */
            if (ngx_http_agentgov_filter_emit(f, &ll, NULL, 0, 1) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        break;

    default: /* NGX_HTTP_AGENTGOV_F_REFUSE */

        if (ngx_http_agentgov_filter_refused(f, &ll) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (head == NULL && !flush) {
        rv = ngx_http_next_body_filter(r, NULL);

    } else {
        rv = ngx_http_next_body_filter(r, head);
    }

    ngx_chain_update_chains(r->pool, &f->free, &f->busy, &head,
                            (ngx_buf_tag_t) &ngx_http_agentgov_module);

    return rv;
}


/* Copy the upstream's buffers into f->data and mark them consumed. */

static ngx_int_t
ngx_http_agentgov_filter_gather(ngx_http_agentgov_filter_t *f,
    ngx_chain_t *in, ngx_uint_t *last, ngx_uint_t *flush)
{
    u_char      *p;
    size_t       n, cap;
    ngx_buf_t   *b;

    *last = 0;
    *flush = 0;

    for ( /* void */ ; in; in = in->next) {
        b = in->buf;

        if (b->last_buf || b->last_in_chain) {
            *last = 1;
        }

        if (b->flush) {
            *flush = 1;
        }

        /* this filter runs before the copy filter: an answer the proxy
           buffered to a temporary file arrives as file buffers */
        n = ngx_buf_in_memory(b) ? (size_t) (b->last - b->pos)
            : b->in_file ? (size_t) (b->file_last - b->file_pos) : 0;

        if (n == 0 || f->mode == NGX_HTTP_AGENTGOV_F_REFUSE || f->why) {
            ngx_http_agentgov_consume(b);
            continue;
        }

        if (f->len + n > NGX_HTTP_AGENTGOV_FILTER_MAX) {
            f->why = "the tool's answer is too large for the gateway to "
                     "inspect";
            ngx_http_agentgov_consume(b);
            continue;
        }

        if (f->len + n > f->cap) {
            cap = ngx_max(f->cap * 2, f->len + n);
            cap = ngx_max(cap, NGX_HTTP_AGENTGOV_FILTER_BUF);

            p = realloc(f->data, cap);
            if (p == NULL) {
                return NGX_ERROR;
            }

            f->data = p;
            f->cap = cap;
        }

        if (ngx_buf_in_memory(b)) {
            ngx_memcpy(f->data + f->len, b->pos, n);

        } else if (ngx_read_file(b->file, f->data + f->len, n, b->file_pos)
                   != (ssize_t) n)
        {
            ngx_log_error(NGX_LOG_ERR, f->r->connection->log, 0,
                          "agentgov: cannot read the tool's buffered answer");
            return NGX_ERROR;
        }

        f->len += n;
        ngx_http_agentgov_consume(b);
    }

    return NGX_OK;
}


/*
 * One buffer of output, from the free list when one is big enough (its old
 * memory, a large allocation, is given back when it is not).
 */

static ngx_int_t
ngx_http_agentgov_filter_emit(ngx_http_agentgov_filter_t *f,
    ngx_chain_t ***ll, const u_char *p, size_t len, ngx_uint_t last)
{
    size_t        size;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(f->r->pool, &f->free);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;

    if (len && (b->start == NULL || (size_t) (b->end - b->start) < len)) {
        if (b->start) {
            (void) ngx_pfree(f->r->pool, b->start);
        }

        /* at least a page: a large allocation, which ngx_pfree frees */
        size = ngx_max(len, NGX_HTTP_AGENTGOV_FILTER_BUF);

        b->start = ngx_palloc(f->r->pool, size);
        if (b->start == NULL) {
            return NGX_ERROR;
        }

        b->end = b->start + size;
    }

    b->pos = b->start;
    b->last = len ? ngx_cpymem(b->start, p, len) : b->start;
    b->temporary = len ? 1 : 0;
    b->memory = 0;
    b->tag = (ngx_buf_tag_t) &ngx_http_agentgov_module;
    b->flush = 1;
    b->last_buf = last;
    b->sync = len ? 0 : 1;

    if (last) {
        f->done = 1;
    }

    **ll = cl;
    *ll = &cl->next;
    cl->next = NULL;

    return NGX_OK;
}


/* Instead of what cannot be read: a JSON-RPC error, then the end. */

static ngx_int_t
ngx_http_agentgov_filter_refused(ngx_http_agentgov_filter_t *f,
    ngx_chain_t ***ll)
{
    char     *text;
    size_t    len;
    json_t   *err;
    u_char   *p;

    ngx_log_error(NGX_LOG_ERR, f->r->connection->log, 0,
                  "agentgov: MCP tool \"%s\": %s", f->ctx->tool->name, f->why);

    err = ag_mcp_error(NULL, AG_MCP_INTERNAL_ERROR, f->why,
                       json_pack("{s:s, s:s%}", "error", "gateway_error",
                                 "request_id", f->ctx->request_id,
                                 sizeof(f->ctx->request_id)));
    if (err == NULL) {
        return NGX_ERROR;
    }

    text = json_dumps(err, JSON_COMPACT);
    json_decref(err);

    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    if (f->mode == NGX_HTTP_AGENTGOV_F_SSE) {
        p = ngx_pnalloc(f->r->pool, len + sizeof("event: message\ndata: \n\n"));
        if (p == NULL) {
            free(text);
            return NGX_ERROR;
        }

        len = ngx_sprintf(p, "event: message\ndata: %s\n\n", text) - p;

    } else {
        p = (u_char *) text;
    }

    if (ngx_http_agentgov_filter_emit(f, ll, p, len, 1) != NGX_OK) {
        free(text);
        return NGX_ERROR;
    }

    free(text);

    return NGX_OK;
}


/*
 * Whether a listed tool stays: its definition must be the pinned one (the
 * first seen, or the policy's), and some call of it must be one this task
 * could be allowed or held for.
 */

static int
ngx_http_agentgov_filter_keep(void *data, ag_str_t name, const char *hex)
{
    ngx_http_agentgov_filter_t *f = data;

    size_t                          i;
    ag_call_t                       call;
    ag_str_t                        tool, digest, pin;
    ag_audit_rec_t                  rec;
    ngx_http_request_t             *r;
    ngx_http_agentgov_ctx_t        *ctx;
    ngx_http_agentgov_pin_e         seen;
    ngx_http_agentgov_store_t      *s;
    ngx_http_agentgov_main_conf_t  *amcf;

    r = f->r;
    ctx = f->ctx;
    amcf = ngx_http_get_module_main_conf(r, ngx_http_agentgov_module);
    s = ngx_http_agentgov_store(r);

    tool.p = ctx->tool->name;
    tool.len = ngx_strlen(ctx->tool->name);
    digest.p = hex;
    digest.len = AG_MCP_DIGEST_HEX;
    pin.p = NULL;
    pin.len = 0;

    for (i = 0; i < ctx->tool->npins; i++) {
        if (ngx_strlen(ctx->tool->pin_names[i]) == name.len
            && ngx_strncmp(ctx->tool->pin_names[i], name.p, name.len) == 0)
        {
            pin.p = ctx->tool->pin_sha256[i];
            pin.len = AG_MCP_DIGEST_HEX;
        }
    }

    if (s == NULL) {
        /* without a zone, only the policy's pins can be held to */
        if (pin.len && ngx_strncmp(pin.p, hex, AG_MCP_DIGEST_HEX) != 0) {
            return 0;
        }

    } else {
        if (ngx_http_agentgov_store_pin_see(s, tool, name, digest, pin, &seen)
            != NGX_AGENTGOV_STORE_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "agentgov: the pin of MCP tool \"%*s\" of \"%s\" "
                          "cannot be kept (agentgov_zone full): hidden",
                          name.len, name.p, ctx->tool->name);
            return 0;
        }

        if (seen == NGX_HTTP_AGENTGOV_PIN_NEW
            || seen == NGX_HTTP_AGENTGOV_PIN_CHANGED)
        {
            ngx_memzero(&rec, sizeof(ag_audit_rec_t));
            rec.event = "tool";
            rec.tool = tool;
            rec.mcp_method.p = "tools/list";
            rec.mcp_method.len = sizeof("tools/list") - 1;
            rec.mcp_tool = name;
            rec.agent = ctx->call.agent;
            rec.task = ctx->call.task;
            rec.op.p = seen == NGX_HTTP_AGENTGOV_PIN_NEW ? "pin" : "changed";
            rec.op.len = ngx_strlen(rec.op.p);
            rec.reason = digest;

            if (ngx_http_agentgov_audit_event(r, &rec) != NGX_OK) {
                return 0;
            }

            if (seen == NGX_HTTP_AGENTGOV_PIN_CHANGED) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "agentgov: the definition of MCP tool "
                              "\"%*s\" of \"%s\" changed since it was "
                              "pinned: hidden until an admin accepts it",
                              name.len, name.p, ctx->tool->name);
            }
        }

        if (seen == NGX_HTTP_AGENTGOV_PIN_CHANGED
            || seen == NGX_HTTP_AGENTGOV_PIN_STILL_CHANGED)
        {
            return 0;
        }
    }

    call = ctx->call;
    call.mcp_method.p = "tools/call";
    call.mcp_method.len = sizeof("tools/call") - 1;
    call.mcp_tool = name;
    call.mcp_resource.len = 0;
    call.mcp_prompt.len = 0;
    call.mcp_args = NULL;

    return ag_policy_may_call(amcf->policy, &call);
}


ngx_int_t
ngx_http_agentgov_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_agentgov_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_agentgov_body_filter;

    return NGX_OK;
}
