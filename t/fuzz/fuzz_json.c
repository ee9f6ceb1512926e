/*
 * ag_json_parse: strict JSON for agent bodies and every file the gateway
 * reads. Oracles on success: nesting within AG_JSON_MAX_DEPTH and equal to
 * what ag_json_depth counted, no NUL and only valid UTF-8 in strings and
 * keys, and a lossless round trip through jansson's encoder.
 */

#include "fuzz.h"
#include "ag_json.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


/* Strict UTF-8: no overlong forms, no surrogates, nothing over U+10FFFF. */
static int
ag_fuzz_utf8_ok(const unsigned char *s, size_t len)
{
    size_t    i, n, k;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {
        if (s[i] < 0x80) {
            n = 1;
            continue;
        }
        if ((s[i] & 0xe0) == 0xc0) {
            n = 2;
            cp = s[i] & 0x1f;
            min = 0x80;
        } else if ((s[i] & 0xf0) == 0xe0) {
            n = 3;
            cp = s[i] & 0x0f;
            min = 0x800;
        } else if ((s[i] & 0xf8) == 0xf0) {
            n = 4;
            cp = s[i] & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (i + n > len) {
            return 0;
        }
        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }
    return 1;
}


static void
ag_fuzz_check_string(const char *s, size_t len)
{
    ag_fuzz_assert(memchr(s, '\0', len) == NULL);
    ag_fuzz_assert(ag_fuzz_utf8_ok((const unsigned char *) s, len));
}


/* The nesting depth of a value ([] is 1), checking strings on the way. */
static int
ag_fuzz_walk(json_t *v)
{
    int          d, max;
    size_t       i;
    json_t      *e;
    const char  *key;

    max = 0;
    if (json_is_string(v)) {
        ag_fuzz_check_string(json_string_value(v), json_string_length(v));
        return 0;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            d = ag_fuzz_walk(e);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, key, e) {
            ag_fuzz_check_string(key, strlen(key));
            d = ag_fuzz_walk(e);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int      depth;
    char     err[256], *text;
    json_t  *v, *again;

    v = ag_json_parse((const char *) data, size, err, sizeof(err));
    if (v == NULL) {
        ag_fuzz_assert(err[0] != '\0');
        return 0;
    }

    depth = ag_fuzz_walk(v);
    ag_fuzz_assert(depth <= AG_JSON_MAX_DEPTH);
    ag_fuzz_assert(ag_json_depth((const char *) data, size, AG_JSON_MAX_DEPTH)
                   == depth);

    text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    ag_fuzz_assert(text != NULL);

    again = ag_json_parse(text, strlen(text), err, sizeof(err));
    if (again == NULL) {
        ag_fuzz_fail("re-encoded JSON refused: %s: %s", err, text);
    }
    ag_fuzz_assert(json_equal(v, again));

    json_decref(again);
    free(text);
    json_decref(v);
    return 0;
}
