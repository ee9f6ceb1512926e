#include "unit.h"
#include "ag_tokcache.h"

static json_t *
claims(const char *sub)
{
    return json_pack("{s:s, s:I, s:I}", "sub", sub, "iat", (json_int_t) 1000,
                     "exp", (json_int_t) 2000);
}

static void
hit_and_miss(void **state)
{
    ag_tokcache_t *c = ag_tokcache_new(16);
    json_t        *a = claims("a");
    int64_t        nb, na;

    (void) state;
    assert_non_null(c);
    ag_tokcache_window(a, 60, &nb, &na);
    assert_int_equal(nb, 940);
    assert_int_equal(na, 2060);

    ag_tokcache_put(c, "tok-a", 5, a, nb, na);
    json_decref(a);

    assert_string_equal(json_string_value(json_object_get(
        ag_tokcache_get(c, "tok-a", 5, 1500), "sub")), "a");
    assert_null(ag_tokcache_get(c, "tok-b", 5, 1500));
    assert_null(ag_tokcache_get(c, "tok-a", 4, 1500));
    assert_null(ag_tokcache_get(c, "tok-", 4, 1500));

    ag_tokcache_free(c);
}

static void
time_bounds_rechecked(void **state)
{
    ag_tokcache_t *c = ag_tokcache_new(4);
    json_t        *a = claims("a");
    int64_t        nb, na;

    (void) state;
    ag_tokcache_window(a, 60, &nb, &na);
    ag_tokcache_put(c, "t", 1, a, nb, na);
    json_decref(a);

    assert_null(ag_tokcache_get(c, "t", 1, 939));       /* before iat - skew */
    assert_non_null(ag_tokcache_get(c, "t", 1, 940));
    assert_non_null(ag_tokcache_get(c, "t", 1, 2060));
    assert_null(ag_tokcache_get(c, "t", 1, 2061));      /* expired: dropped */
    assert_null(ag_tokcache_get(c, "t", 1, 1500));

    ag_tokcache_free(c);
}

static void
eviction_keeps_correctness(void **state)
{
    ag_tokcache_t *c = ag_tokcache_new(2);
    char           tok[32];
    int            i, found;

    (void) state;
    for (i = 0; i < 100; i++) {
        json_t *v = json_pack("{s:i}", "n", i);
        snprintf(tok, sizeof(tok), "token-%d", i);
        ag_tokcache_put(c, tok, strlen(tok), v, 0, 10);
        json_decref(v);
    }

    found = 0;
    for (i = 0; i < 100; i++) {
        json_t *v;
        snprintf(tok, sizeof(tok), "token-%d", i);
        v = ag_tokcache_get(c, tok, strlen(tok), 5);
        if (v != NULL) {
            assert_int_equal(json_integer_value(json_object_get(v, "n")), i);
            found++;
        }
    }

    assert_true(found >= 1 && found <= 2);
    assert_non_null(ag_tokcache_get(c, "token-99", 8, 5));
    ag_tokcache_free(c);
}

static void
overflowing_claims_saturate(void **state)
{
    json_t  *v = json_pack("{s:I, s:I}", "exp", (json_int_t) INT64_MAX,
                           "nbf", (json_int_t) INT64_MIN);
    int64_t  nb, na;

    (void) state;
    ag_tokcache_window(v, 60, &nb, &na);
    assert_true(na == INT64_MAX);
    assert_true(nb < 0);
    json_decref(v);

    v = json_pack("{s:s}", "sub", "no-times");
    ag_tokcache_window(v, 60, &nb, &na);
    assert_true(na < 0);       /* no exp: never valid from the cache */
    json_decref(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hit_and_miss),
        cmocka_unit_test(time_bounds_rechecked),
        cmocka_unit_test(eviction_keeps_correctness),
        cmocka_unit_test(overflowing_claims_saturate),
    };

    return cmocka_run_group_tests_name("tokcache", tests, NULL, NULL);
}
