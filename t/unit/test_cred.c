/* Minted tool credentials and their cache (ag_cred.c, SPEC section 7). */

#include "unit.h"
#include "ag_cred.h"
#include "ag_jwt.h"
#include "unit_policy.h"

#define NOW  INT64_C(1790000000)

static const char *policy_text =
    "{\"agentgov\": 1,"
    " \"tools\": {\"tickets\": {\"credential\": {\"type\": \"jwt\","
    "   \"audience\": \"tickets-api\", \"ttl\": \"60s\"}},"
    "   \"wiki\": {}},"
    " \"default\": \"deny\"}";

typedef struct {
    ag_policy_t  *p;
    EVP_PKEY     *key;
    ag_jwks_t    *jwks;
    char          kid[64];
    ag_task_t     t;
} fixture_t;

static int
setup(void **state)
{
    fixture_t  *f = calloc(1, sizeof(fixture_t));
    json_t     *jwks;
    char       *text, err[256];

    assert_non_null(f);
    f->p = load(policy_text);
    f->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(f->key);
    assert_int_equal(ag_key_thumbprint(f->key, f->kid, sizeof(f->kid)), 0);
    jwks = json_pack("{s:[o]}", "keys", ag_jwk_public(f->key, f->kid));
    text = json_dumps(jwks, 0);
    f->jwks = ag_jwks_parse(text, strlen(text), err, sizeof(err));
    assert_non_null(f->jwks);
    free(text);
    json_decref(jwks);

    f->t.id = (ag_str_t) ag_str_lit("TaskTaskTaskTaskTask01");
    f->t.agent = (ag_str_t) ag_str_lit("child-bot");
    f->t.intent = (ag_str_t) ag_str_lit("triage");
    f->t.chain = (ag_str_t) ag_str_lit("root-bot>mid-bot>child-bot");
    f->t.depth = 2;
    f->t.expires = NOW + 3600;

    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t  *f = *state;

    ag_policy_free(f->p);
    EVP_PKEY_free(f->key);
    ag_jwks_free(f->jwks);
    free(f);
    return 0;
}

static json_t *
verified(fixture_t *f, const char *tok)
{
    json_t  *payload;
    char     err[256];

    assert_int_equal(ag_jws_verify_jwks(f->jwks, tok, strlen(tok), AG_CRED_TYP,
                                        &payload, err, sizeof(err)), AG_JWT_OK);
    return payload;
}

static void
mint_claims(void **state)
{
    fixture_t        *f = *state;
    ag_cred_t         c;
    json_t           *pl, *act;
    char              err[256];
    const ag_tool_t  *tool = ag_policy_tool(f->p, "tickets", 7);

    assert_int_equal(ag_cred_mint(f->key, f->kid, "gw", &f->t, tool, NOW, &c,
                                  err, sizeof(err)), 0);
    pl = verified(f, c.token);
    assert_string_equal(json_string_value(json_object_get(pl, "iss")), "gw");
    assert_string_equal(json_string_value(json_object_get(pl, "aud")), "tickets-api");
    assert_string_equal(json_string_value(json_object_get(pl, "sub")), "child-bot");
    assert_string_equal(json_string_value(json_object_get(pl, "task")), "TaskTaskTaskTaskTask01");
    assert_string_equal(json_string_value(json_object_get(pl, "intent")), "triage");
    assert_string_equal(json_string_value(json_object_get(pl, "scope")), "tickets");
    assert_string_equal(json_string_value(json_object_get(pl, "jti")), c.jti);
    assert_int_equal(json_integer_value(json_object_get(pl, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(pl, "exp")), NOW + 60);

    /* the delegators, nearest outermost */
    act = json_object_get(pl, "act");
    assert_string_equal(json_string_value(json_object_get(act, "sub")), "mid-bot");
    act = json_object_get(act, "act");
    assert_string_equal(json_string_value(json_object_get(act, "sub")), "root-bot");
    assert_null(json_object_get(act, "act"));

    /* a task token's verifier refuses it: another typ */
    assert_int_not_equal(ag_jws_verify_jwks(f->jwks, c.token, strlen(c.token),
                                            "agentgov-task+jwt", NULL, err,
                                            sizeof(err)), AG_JWT_OK);
    json_decref(pl);
    ag_cred_clear(&c);
}

static void
mint_never_past_task(void **state)
{
    fixture_t        *f = *state;
    ag_cred_t         c;
    json_t           *pl;
    char              err[256];
    const ag_tool_t  *tool = ag_policy_tool(f->p, "tickets", 7);

    f->t.expires = NOW + 20;
    f->t.chain = (ag_str_t) ag_str_null;
    assert_int_equal(ag_cred_mint(f->key, f->kid, "gw", &f->t, tool, NOW, &c,
                                  err, sizeof(err)), 0);
    pl = verified(f, c.token);
    assert_int_equal(json_integer_value(json_object_get(pl, "exp")), NOW + 20);
    assert_null(json_object_get(pl, "act"));
    json_decref(pl);
    ag_cred_clear(&c);

    f->t.expires = NOW;
    assert_int_equal(ag_cred_mint(f->key, f->kid, "gw", &f->t, tool, NOW, &c,
                                  err, sizeof(err)), -1);
    assert_null(c.token);

    /* a tool without a jwt credential */
    f->t.expires = NOW + 3600;
    assert_int_equal(ag_cred_mint(f->key, f->kid, "gw", &f->t,
                                  ag_policy_tool(f->p, "wiki", 4), NOW, &c,
                                  err, sizeof(err)), -1);
}

static void
cache_half_life(void **state)
{
    fixture_t        *f = *state;
    ag_cred_t         c;
    char              err[256], jti[AG_CRED_JTI_LEN + 1];
    ag_credcache_t   *cc = ag_credcache_new(8);
    const ag_cred_t  *got;
    const ag_tool_t  *tool = ag_policy_tool(f->p, "tickets", 7);
    ag_str_t          task = f->t.id, name = ag_str_lit("tickets"),
                      other = ag_str_lit("wiki");

    assert_non_null(cc);
    assert_null(ag_credcache_get(cc, task, name, NOW, f->t.expires));
    assert_int_equal(ag_cred_mint(f->key, f->kid, "gw", &f->t, tool, NOW, &c,
                                  err, sizeof(err)), 0);
    strcpy(jti, c.jti);
    assert_int_equal(ag_credcache_put(cc, task, name, &c), 0);
    assert_null(c.token);

    got = ag_credcache_get(cc, task, name, NOW + 29, f->t.expires);
    assert_non_null(got);
    assert_string_equal(got->jti, jti);
    assert_null(ag_credcache_get(cc, task, other, NOW + 1, f->t.expires));
    /* half its life gone: minted anew */
    assert_null(ag_credcache_get(cc, task, name, NOW + 30, f->t.expires));
    assert_null(ag_credcache_get(cc, task, name, NOW + 1, f->t.expires));

    /* never past the task: a renewal that shortened it, or its end */
    assert_int_equal(ag_cred_mint(f->key, f->kid, "gw", &f->t, tool, NOW, &c,
                                  err, sizeof(err)), 0);
    assert_int_equal(ag_credcache_put(cc, task, name, &c), 0);
    assert_null(ag_credcache_get(cc, task, name, NOW + 1, NOW + 30));

    ag_credcache_free(cc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(mint_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(mint_never_past_task, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_half_life, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
