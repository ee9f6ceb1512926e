#include <stdio.h>
#include <string.h>

#include "ag_json.h"


int
ag_json_depth(const char *data, size_t len, int limit)
{
    size_t  i;
    int     depth, max, in_string;

    depth = 0;
    max = 0;
    in_string = 0;

    for (i = 0; i < len; i++) {
        char c = data[i];

        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }

        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max) {
                max = depth;
                if (max > limit) {
                    return max;
                }
            }
            break;
        case ']':
        case '}':
            if (--depth < 0) {
                return -1;
            }
            break;
        default:
            break;
        }
    }

    return depth == 0 ? max : -1;
}


json_t *
ag_json_parse(const char *data, size_t len, char *err, size_t errlen)
{
    int           depth;
    json_t       *v;
    json_error_t  je;

    if (len == 0) {
        snprintf(err, errlen, "empty JSON text");
        return NULL;
    }

    /* jansson's own limit is far deeper; counting first also bounds the
       parser's recursion on hostile input */
    depth = ag_json_depth(data, len, AG_JSON_MAX_DEPTH);
    if (depth > AG_JSON_MAX_DEPTH) {
        snprintf(err, errlen, "JSON nested deeper than %d", AG_JSON_MAX_DEPTH);
        return NULL;
    }

    v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (v == NULL) {
        snprintf(err, errlen, "malformed JSON at byte %d: %s", je.position,
                 je.text);
        return NULL;
    }

    return v;
}
