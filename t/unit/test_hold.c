/* Who may decide a held call and when it is approved (ag_hold.c, SPEC 6). */

#include "unit.h"
#include "unit_policy.h"
#include "ag_hold.h"

#define T0  INT64_C(1790000000)

static const char *policy_text =
    "{'agentgov': 1,"
    " 'agents': {'bot': {'jwt': {'iss': 'i', 'sub': 'bot'}, 'owner': 'team'}},"
    " 'groups': {'finance': [{'jwt': {'iss': 'i', 'groups': 'finance'}}],"
    "            'secops':  [{'jwt': {'iss': 'i', 'groups': 'secops'}}],"
    "            'team':    [{'jwt': {'iss': 'i', 'groups': 'team'}}]},"
    " 'tools': {'pay': {}},"
    " 'rules': ["
    "  {'id': 'two', 'effect': 'hold', 'tool': 'pay', 'approvers': ['finance'],"
    "   'approvals': 2, 'separate_from_owner': true, 'timeout': '10m'},"
    "  {'id': 'esc', 'effect': 'hold', 'tool': 'pay', 'approvers': ['secops'],"
    "   'escalate_after': '60s', 'escalate_to': ['finance'], 'timeout': '5m'},"
    "  {'id': 'one', 'effect': 'hold', 'tool': 'pay', 'approvers': ['secops']}"
    " ], 'default': 'deny'}";

typedef struct {
    ag_policy_t      *p;
    const ag_rule_t  *rules[3];
    json_t           *claims[8];
    size_t            n;
} fixture_t;

static int
setup(void **state)
{
    fixture_t  *f = calloc(1, sizeof(fixture_t));

    assert_non_null(f);
    f->p = load(policy_text);
    f->rules[0] = ag_policy_rule(f->p, "two", 3);
    f->rules[1] = ag_policy_rule(f->p, "esc", 3);
    f->rules[2] = ag_policy_rule(f->p, "one", 3);
    assert_non_null(f->rules[2]);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t  *f = *state;
    size_t      i;

    for (i = 0; i < f->n; i++) {
        json_decref(f->claims[i]);
    }
    ag_policy_free(f->p);
    free(f);
    return 0;
}

static ag_identity_t
person(fixture_t *f, const char *sub, const char *groups)
{
    ag_identity_t  id;

    memset(&id, 0, sizeof(id));
    id.claims = json_pack("{s:s, s:s, s:[s]}", "iss", "i", "sub", sub,
                          "groups", groups);
    f->claims[f->n++] = id.claims;
    return id;
}

static ag_hold_result_t
decide(fixture_t *f, ag_hold_t *h, size_t nrules, ag_identity_t *id,
    const char *who, int approve, int64_t now)
{
    ag_str_t  w = { who, strlen(who) };

    return ag_hold_decide(f->p, h, f->rules, nrules, id, w, approve, "team",
                          T0, now);
}

static void
two_people_one_outside_the_owner(void **state)
{
    fixture_t      *f = *state;
    ag_hold_t       h;
    ag_identity_t   a = person(f, "ann", "finance"),
                    b = person(f, "bob", "finance"),
                    o = person(f, "olga", "team"),
                    s = person(f, "sam", "secops");

    memset(&h, 0, sizeof(h));
    /* not in the rule's groups */
    assert_int_equal(decide(f, &h, 1, &s, "sam", 1, T0), AG_HOLD_NOT_APPROVER);
    assert_int_equal(decide(f, &h, 1, &a, "ann", 1, T0), AG_HOLD_RECORDED);
    /* the same person twice */
    assert_int_equal(decide(f, &h, 1, &a, "ann", 1, T0), AG_HOLD_CONFLICT);
    assert_int_equal(decide(f, &h, 1, &b, "bob", 1, T0), AG_HOLD_NOW_APPROVED);
    assert_int_equal(h.state, AG_HOLD_APPROVED);
    /* closed */
    assert_int_equal(decide(f, &h, 1, &o, "olga", 0, T0), AG_HOLD_CONFLICT);
    (void) o;
}

static void
owner_members_may_not_be_the_only_approvers(void **state)
{
    fixture_t      *f = *state;
    ag_hold_t       h;
    ag_identity_t   a = person(f, "ann", "finance"),
                    b = person(f, "bob", "finance"),
                    c = person(f, "cat", "finance");

    /* ann and bob are also in the owner's group */
    json_array_append_new(json_object_get(a.claims, "groups"), json_string("team"));
    json_array_append_new(json_object_get(b.claims, "groups"), json_string("team"));

    memset(&h, 0, sizeof(h));
    assert_int_equal(decide(f, &h, 1, &a, "ann", 1, T0), AG_HOLD_RECORDED);
    assert_int_equal(decide(f, &h, 1, &b, "bob", 1, T0), AG_HOLD_RECORDED);
    assert_int_equal(ag_hold_satisfied(&h, f->rules, 1), 0);
    assert_int_equal(decide(f, &h, 1, &c, "cat", 1, T0), AG_HOLD_NOW_APPROVED);
}

static void
a_deny_is_final(void **state)
{
    fixture_t      *f = *state;
    ag_hold_t       h;
    ag_identity_t   a = person(f, "ann", "finance"),
                    b = person(f, "bob", "finance");

    memset(&h, 0, sizeof(h));
    assert_int_equal(decide(f, &h, 1, &a, "ann", 1, T0), AG_HOLD_RECORDED);
    assert_int_equal(decide(f, &h, 1, &b, "bob", 0, T0), AG_HOLD_NOW_DENIED);
    assert_int_equal(h.state, AG_HOLD_DENIED);
}

static void
every_rule_must_be_satisfied_and_escalation(void **state)
{
    fixture_t      *f = *state;
    ag_hold_t       h;
    ag_identity_t   s = person(f, "sam", "secops"),
                    a = person(f, "ann", "finance"),
                    b = person(f, "bob", "finance");

    /* rules "esc" and "one": secops for both; finance for "esc" after 60s */
    memset(&h, 0, sizeof(h));
    assert_int_equal(ag_hold_may_decide(f->p, f->rules + 1, 2, &a, T0, T0 + 59), 0);
    assert_int_equal(ag_hold_may_decide(f->p, f->rules + 1, 2, &a, T0, T0 + 60), 1);
    assert_int_equal(ag_hold_may_decide(f->p, f->rules + 1, 2, &s, T0, T0), 3);
    assert_int_equal(ag_hold_decide(f->p, &h, f->rules + 1, 2, &a,
                                    (ag_str_t) ag_str_lit("ann"), 1, "team",
                                    T0, T0 + 61), AG_HOLD_RECORDED);
    assert_int_equal(ag_hold_satisfied(&h, f->rules + 1, 2), 0);
    assert_int_equal(ag_hold_decide(f->p, &h, f->rules + 1, 2, &s,
                                    (ag_str_t) ag_str_lit("sam"), 1, "team",
                                    T0, T0 + 61), AG_HOLD_NOW_APPROVED);

    /* the shortest timeout applies, capped */
    assert_int_equal(ag_hold_timeout(f->rules, 3, 900), 300);
    assert_int_equal(ag_hold_timeout(f->rules + 2, 1, 900), 900);
    assert_int_equal(ag_hold_timeout(f->rules, 3, 120), 120);
    (void) b;
}

static void
an_agent_never_decides(void **state)
{
    fixture_t      *f = *state;
    ag_hold_t       h;
    ag_identity_t   bot = person(f, "bot", "finance");

    memset(&h, 0, sizeof(h));
    assert_int_equal(decide(f, &h, 1, &bot, "bot", 1, T0), AG_HOLD_NOT_APPROVER);
}

static void
digest_binds_the_whole_call(void **state)
{
    ag_call_t  c;
    char       d1[AG_HOLD_DIGEST_HEX], d2[AG_HOLD_DIGEST_HEX];

    (void) state;
    memset(&c, 0, sizeof(c));
    c.agent = (ag_str_t) ag_str_lit("bot");
    c.task = (ag_str_t) ag_str_lit("t1");
    c.tool = (ag_str_t) ag_str_lit("pay");
    c.method = (ag_str_t) ag_str_lit("POST");
    c.host = (ag_str_t) ag_str_lit("h");
    c.path = (ag_str_t) ag_str_lit("/v1/refunds");
    c.query = (ag_str_t) ag_str_lit("a=1");
    assert_int_equal(ag_hold_digest(&c, "{\"amount\":9000}", 15, d1), 0);
    assert_int_equal(ag_hold_digest(&c, "{\"amount\":9000}", 15, d2), 0);
    assert_memory_equal(d1, d2, sizeof(d1));
    assert_int_equal(ag_hold_digest(&c, "{\"amount\":9001}", 15, d2), 0);
    assert_memory_not_equal(d1, d2, sizeof(d1));
    /* moving a byte from the path to the query is another call */
    c.path = (ag_str_t) ag_str_lit("/v1/refunds?");
    c.query = (ag_str_t) ag_str_lit("=1");
    assert_int_equal(ag_hold_digest(&c, "{\"amount\":9000}", 15, d2), 0);
    assert_memory_not_equal(d1, d2, sizeof(d1));
    assert_string_equal(ag_hold_state_name(AG_HOLD_EXPIRED), "expired");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(two_people_one_outside_the_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(owner_members_may_not_be_the_only_approvers, setup, teardown),
        cmocka_unit_test_setup_teardown(a_deny_is_final, setup, teardown),
        cmocka_unit_test_setup_teardown(every_rule_must_be_satisfied_and_escalation, setup, teardown),
        cmocka_unit_test_setup_teardown(an_agent_never_decides, setup, teardown),
        cmocka_unit_test(digest_binds_the_whole_call),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
