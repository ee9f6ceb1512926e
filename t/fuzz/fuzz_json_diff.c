/*
 * ag_json_parse against ag_json_parse_ref (ag_json_depth, then jansson's
 * json_loadb): the gateway's own parser must read every body exactly as the
 * reference does. Oracles: both accept or both refuse; a refusal is of the
 * same kind (empty, too deep, malformed) with an offset within the text; an
 * accepted text gives the same value: the same types (integer and real told
 * apart), integers equal, reals equal bit for bit (-0.0 is not 0.0), strings
 * equal byte for byte, objects with the same keys in the same order, and
 * json_equal agrees.
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


static void
ag_fuzz_same(json_t *a, json_t *b, int depth)
{
    size_t       i, n;
    double       da, db;
    json_t      *va, *vb;
    const char  *ka, *kb;
    void        *ia, *ib;

    ag_fuzz_assert(depth <= AG_JSON_MAX_DEPTH + 1);
    ag_fuzz_assert(json_typeof(a) == json_typeof(b));

    switch (json_typeof(a)) {

    case JSON_INTEGER:
        ag_fuzz_assert(json_integer_value(a) == json_integer_value(b));
        break;

    case JSON_REAL:
        da = json_real_value(a);
        db = json_real_value(b);
        ag_fuzz_assert(memcmp(&da, &db, sizeof(double)) == 0);
        break;

    case JSON_STRING:
        n = json_string_length(a);
        ag_fuzz_assert(n == json_string_length(b));
        ag_fuzz_assert(memcmp(json_string_value(a), json_string_value(b), n)
                       == 0);
        break;

    case JSON_ARRAY:
        n = json_array_size(a);
        ag_fuzz_assert(n == json_array_size(b));
        for (i = 0; i < n; i++) {
            ag_fuzz_same(json_array_get(a, i), json_array_get(b, i),
                         depth + 1);
        }
        break;

    case JSON_OBJECT:
        ag_fuzz_assert(json_object_size(a) == json_object_size(b));
        ia = json_object_iter(a);
        ib = json_object_iter(b);
        while (ia != NULL) {
            ag_fuzz_assert(ib != NULL);
            ka = json_object_iter_key(ia);
            kb = json_object_iter_key(ib);
            n = json_object_iter_key_len(ia);
            ag_fuzz_assert(n == json_object_iter_key_len(ib));
            ag_fuzz_assert(memcmp(ka, kb, n) == 0);
            va = json_object_iter_value(ia);
            vb = json_object_iter_value(ib);
            ag_fuzz_same(va, vb, depth + 1);
            ia = json_object_iter_next(a, ia);
            ib = json_object_iter_next(b, ib);
        }
        ag_fuzz_assert(ib == NULL);
        break;

    default:
        /* true, false, null: the type says it all */
        break;
    }
}


/* 'e'mpty, 'd'eep or 'm'alformed (with the offset checked) */
static int
ag_fuzz_kind(const char *err, size_t size, int fast)
{
    unsigned long long  at;

    if (strcmp(err, "empty JSON text") == 0) {
        return 'e';
    }

    if (strcmp(err, "JSON nested deeper than 64") == 0) {
        return 'd';
    }

    if (fast) {
        if (sscanf(err, "malformed JSON at byte %llu: ", &at) != 1) {
            ag_fuzz_fail("fast parser's error: %s", err);
        }
        ag_fuzz_assert(at <= size);
        ag_fuzz_assert(strlen(strchr(err, ':')) > 2);   /* a reason */

    } else {
        ag_fuzz_assert(strncmp(err, "malformed JSON at byte ", 23) == 0);
    }

    return 'm';
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int      kf, kr;
    char     ferr[256], rerr[256];
    json_t  *f, *r;

    ferr[0] = '\0';
    rerr[0] = '\0';

    f = ag_json_parse((const char *) data, size, ferr, sizeof(ferr));
    r = ag_json_parse_ref((const char *) data, size, rerr, sizeof(rerr));

    if (ag_fuzz_debug()) {
        fprintf(stderr, "fast: %s; reference: %s\n",
                f ? "accepted" : ferr, r ? "accepted" : rerr);
    }

    if (f == NULL || r == NULL) {
        if (f != NULL || r != NULL) {
            ag_fuzz_fail("fast %s, reference %s", f ? "accepted" : ferr,
                         r ? "accepted" : rerr);
        }

        kf = ag_fuzz_kind(ferr, size, 1);
        kr = ag_fuzz_kind(rerr, size, 0);
        if (kf != kr) {
            ag_fuzz_fail("refused differently: fast \"%s\", reference \"%s\"",
                         ferr, rerr);
        }

        return 0;
    }

    ag_fuzz_same(f, r, 0);
    ag_fuzz_assert(json_equal(f, r));

    json_decref(f);
    json_decref(r);
    return 0;
}
