/*
 * A call described as JSON (CALL.json of `agentgov policy eval`, the cases of
 * `agentgov policy test`, the unit tests) turned into an ag_call_t.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ag_call.h"
#include "ag_util.h"


#define ag_call_err(err, errlen, key, msg)                                    \
    (snprintf(err, errlen, "/%s: %s", key, msg), -1)


static int
ag_call_str(json_t *obj, const char *key, ag_str_t *out, char *err,
    size_t errlen)
{
    json_t  *v;

    v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        out->p = NULL;
        out->len = 0;
        return 0;
    }
    if (!json_is_string(v)) {
        return ag_call_err(err, errlen, key, "expected a string");
    }
    out->p = json_string_value(v);
    out->len = json_string_length(v);
    return 0;
}


static int
ag_call_headers(json_t *v, ag_call_t *call, ag_header_t *hdrs, size_t max,
    char *err, size_t errlen)
{
    const char  *name;
    json_t      *hv, *e;
    size_t       i, n;

    if (v == NULL) {
        return 0;
    }
    if (!json_is_object(v)) {
        return ag_call_err(err, errlen, "headers", "expected an object");
    }

    n = 0;
    json_object_foreach(v, name, hv) {
        /* an array is a header sent more than once */
        for (i = 0; i < (json_is_array(hv) ? json_array_size(hv) : 1); i++) {
            e = json_is_array(hv) ? json_array_get(hv, i) : hv;
            if (!json_is_string(e)) {
                snprintf(err, errlen, "/headers/%s: expected a string or an "
                         "array of strings", name);
                return -1;
            }
            if (n == max) {
                snprintf(err, errlen, "/headers: more than %zu headers", max);
                return -1;
            }
            hdrs[n].name.p = name;
            hdrs[n].name.len = strlen(name);
            hdrs[n].value.p = json_string_value(e);
            hdrs[n].value.len = json_string_length(e);
            n++;
        }
    }

    call->headers = hdrs;
    call->nheaders = n;
    return 0;
}


/* Percent-encode s (everything but RFC 3986 unreserved) into out, which
   holds 3 * len + 1 bytes. */
static size_t
ag_call_encode(const char *s, size_t len, char *out)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i, o;
    unsigned char      c;

    for (i = 0, o = 0; i < len; i++) {
        c = (unsigned char) s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
        {
            out[o++] = (char) c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}


static int
ag_call_query_append(json_t *acc, const char *name, json_t *v)
{
    char    buf[2 * 3 * 1024 + 2];     /* name=value, each up to 1024 bytes */
    size_t  n;
    json_t *s;
    char   *text;

    text = json_is_string(v) ? NULL
           : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!json_is_string(v) && text == NULL) {
        return -1;
    }

    if (strlen(name) > 1024
        || (json_is_string(v) && json_string_length(v) > 1024)
        || (text != NULL && strlen(text) > 1024))
    {
        free(text);
        return -1;
    }

    n = ag_call_encode(name, strlen(name), buf);
    buf[n++] = '=';
    if (json_is_string(v)) {
        n += ag_call_encode(json_string_value(v), json_string_length(v),
                            buf + n);
    } else {
        n += ag_call_encode(text, strlen(text), buf + n);
    }
    free(text);

    s = json_stringn(buf, n);
    return s != NULL ? json_array_append_new(acc, s) : -1;
}


/*
 * An object query ({"q": "a b", "tag": ["x", "y"]}) is encoded into a raw
 * query string ("q=a%20b&tag=x&tag=y"), which replaces it in obj so that the
 * call can point into it.
 */
static int
ag_call_json_query(json_t *obj, ag_call_t *call, char *err, size_t errlen)
{
    const char  *name;
    json_t      *v, *e, *parts, *s;
    size_t       i, total;
    char        *q;

    v = json_object_get(obj, "query");
    if (v == NULL || json_is_string(v)) {
        return ag_call_str(obj, "query", &call->query, err, errlen);
    }
    if (!json_is_object(v)) {
        return ag_call_err(err, errlen, "query", "expected a string or an "
                           "object");
    }

    parts = json_array();
    if (parts == NULL) {
        return ag_call_err(err, errlen, "query", "out of memory");
    }
    json_object_foreach(v, name, e) {
        for (i = 0; i < (json_is_array(e) ? json_array_size(e) : 1); i++) {
            s = json_is_array(e) ? json_array_get(e, i) : e;
            if (json_is_object(s) || json_is_array(s)
                || ag_call_query_append(parts, name, s) != 0)
            {
                json_decref(parts);
                snprintf(err, errlen, "/query/%s: expected a string, a number "
                         "or an array of them (up to 1024 bytes)", name);
                return -1;
            }
        }
    }

    for (i = 0, total = 0; i < json_array_size(parts); i++) {
        total += json_string_length(json_array_get(parts, i)) + 1;
    }
    q = malloc(total + 1);
    if (q == NULL) {
        json_decref(parts);
        return ag_call_err(err, errlen, "query", "out of memory");
    }
    for (i = 0, total = 0; i < json_array_size(parts); i++) {
        s = json_array_get(parts, i);
        if (i > 0) {
            q[total++] = '&';
        }
        memcpy(q + total, json_string_value(s), json_string_length(s));
        total += json_string_length(s);
    }
    json_decref(parts);

    s = json_stringn(q, total);
    free(q);
    if (s == NULL || json_object_set_new(obj, "query", s) != 0) {
        return ag_call_err(err, errlen, "query", "out of memory");
    }
    return ag_call_str(obj, "query", &call->query, err, errlen);
}


static int
ag_call_mcp(json_t *v, ag_call_t *call, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "method", "tool", "resource", "prompt", "arguments", NULL
    };
    const char  *key;
    json_t      *e;
    size_t       i;

    if (v == NULL) {
        return 0;
    }
    if (!json_is_object(v)) {
        return ag_call_err(err, errlen, "mcp", "expected an object");
    }
    json_object_foreach(v, key, e) {
        for (i = 0; keys[i] != NULL && strcmp(keys[i], key) != 0; i++) {
            /* void */
        }
        if (keys[i] == NULL) {
            snprintf(err, errlen, "/mcp/%s: unknown key", key);
            return -1;
        }
    }

    if (ag_call_str(v, "method", &call->mcp_method, err, errlen) != 0
        || ag_call_str(v, "tool", &call->mcp_tool, err, errlen) != 0
        || ag_call_str(v, "resource", &call->mcp_resource, err, errlen) != 0
        || ag_call_str(v, "prompt", &call->mcp_prompt, err, errlen) != 0)
    {
        /* err names the key without the "mcp" level; say where it is */
        char tmp[256];

        snprintf(tmp, sizeof(tmp), "%s", err);
        snprintf(err, errlen, "/mcp%s", tmp);
        return -1;
    }
    e = json_object_get(v, "arguments");
    call->mcp_args = json_is_null(e) ? NULL : e;
    return 0;
}


/* "2026-11-23T10:00:00Z", with optional fraction and numeric offset, to
   seconds (the fraction dropped: floor). */
static int
ag_rfc3339(const char *s, size_t len, int64_t *out)
{
    int64_t  us;

    if (ag_rfc3339_us(s, len, AG_TIME_OFFSET, &us) != 0) {
        return -1;
    }

    *out = us / 1000000 - (us % 1000000 < 0);
    return 0;
}


static int
ag_call_scalars(json_t *obj, ag_call_t *call, char *err, size_t errlen)
{
    json_t  *v;
    size_t   i;

    if (ag_call_str(obj, "agent", &call->agent, err, errlen) != 0
        || ag_call_str(obj, "owner", &call->owner, err, errlen) != 0
        || ag_call_str(obj, "task", &call->task, err, errlen) != 0
        || ag_call_str(obj, "intent", &call->intent, err, errlen) != 0
        || ag_call_str(obj, "chain", &call->chain, err, errlen) != 0
        || ag_call_str(obj, "tool", &call->tool, err, errlen) != 0
        || ag_call_str(obj, "method", &call->method, err, errlen) != 0
        || ag_call_str(obj, "host", &call->host, err, errlen) != 0
        || ag_call_str(obj, "path", &call->path, err, errlen) != 0)
    {
        return -1;
    }

    for (i = 0; i < call->method.len; i++) {
        if (call->method.p[i] < 'A' || call->method.p[i] > 'Z') {
            return ag_call_err(err, errlen, "method", "expected an HTTP method "
                               "in upper case");
        }
    }
    for (i = 0; i < call->host.len; i++) {
        if (call->host.p[i] >= 'A' && call->host.p[i] <= 'Z') {
            return ag_call_err(err, errlen, "host", "expected lower case, "
                               "without port");
        }
    }

    v = json_object_get(obj, "depth");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0
            || json_integer_value(v) > 1000)
        {
            return ag_call_err(err, errlen, "depth", "expected an integer from "
                               "0 to 1000");
        }
        call->depth = (int) json_integer_value(v);
    }

    v = json_object_get(obj, "time");
    if (v == NULL) {
        call->now = (int64_t) time(NULL);
    } else if (!json_is_string(v)
               || ag_rfc3339(json_string_value(v), json_string_length(v),
                             &call->now) != 0)
    {
        return ag_call_err(err, errlen, "time", "expected an RFC 3339 time "
                           "like \"2026-11-23T10:00:00Z\"");
    }
    return 0;
}


int
ag_call_from_json(json_t *obj, ag_call_t *call, ag_header_t *hdrs,
    size_t nhdrs_max, char *err, size_t errlen)
{
    static const char *const keys[] = {
        "agent", "owner", "task", "intent", "chain", "depth", "tool",
        "method", "host", "path", "headers", "query", "body", "mcp", "time",
        NULL
    };
    const char  *key;
    json_t      *v;
    size_t       i;

    memset(call, 0, sizeof(ag_call_t));

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "/: expected an object");
        return -1;
    }
    json_object_foreach(obj, key, v) {
        for (i = 0; keys[i] != NULL && strcmp(keys[i], key) != 0; i++) {
            /* void */
        }
        if (keys[i] == NULL) {
            return ag_call_err(err, errlen, key, "unknown key");
        }
    }

    if (ag_call_scalars(obj, call, err, errlen) != 0
        || ag_call_headers(json_object_get(obj, "headers"), call, hdrs,
                           nhdrs_max, err, errlen) != 0
        || ag_call_json_query(obj, call, err, errlen) != 0
        || ag_call_mcp(json_object_get(obj, "mcp"), call, err, errlen) != 0)
    {
        return -1;
    }

    v = json_object_get(obj, "body");
    call->body = json_is_null(v) ? NULL : v;
    return 0;
}
