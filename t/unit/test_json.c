#include "unit.h"
#include "ag_json.h"

static void
parse_ok(void **state)
{
    char    err[256];
    json_t *v = ag_json_parse("{\"a\": [1, 2, {\"b\": null}]}", 26, err, sizeof(err));

    (void) state;
    assert_non_null(v);
    assert_int_equal(json_array_size(json_object_get(v, "a")), 3);
    json_decref(v);
}

static void
refuses(const char *text, size_t len, const char *want)
{
    char    err[256];
    json_t *v = ag_json_parse(text, len, err, sizeof(err));

    if (v != NULL) {
        json_decref(v);
        fail_msg("accepted: %.*s", (int) len, text);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    }
}

static void
refuse_duplicates(void **state)
{
    (void) state;
    refuses("{\"a\": 1, \"a\": 2}", 16, "duplicate");
}

static void
refuse_depth(void **state)
{
    char buf[200];
    int  i;

    (void) state;
    for (i = 0; i < 65; i++) {
        buf[i] = '[';
        buf[65 + i] = ']';
    }
    refuses(buf, 130, "deeper than 64");

    /* 64 levels are fine */
    {
        char    err[256];
        json_t *v = ag_json_parse(buf + 1, 128, err, sizeof(err));
        assert_non_null(v);
        json_decref(v);
    }
}

static void
refuse_bad_utf8_nul_trailing(void **state)
{
    (void) state;
    refuses("\"\xc3\x28\"", 4, "malformed");
    refuses("\"a\\u0000b\"", 10, "malformed");
    refuses("{} {}", 5, "malformed");
    refuses("", 0, "empty");
    refuses("123456789012345678901234567890", 30, "malformed");
    refuses("{\"a\": \"]\"}}", 11, "malformed");
}

static void
depth_ignores_strings(void **state)
{
    (void) state;
    assert_int_equal(ag_json_depth("{\"[[[\\\"\": [1]}", 14, 64), 2);
    assert_int_equal(ag_json_depth("]", 1, 64), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_ok),
        cmocka_unit_test(refuse_duplicates),
        cmocka_unit_test(refuse_depth),
        cmocka_unit_test(refuse_bad_utf8_nul_trailing),
        cmocka_unit_test(depth_ignores_strings),
    };

    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
