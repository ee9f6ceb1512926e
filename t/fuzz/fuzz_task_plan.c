/*
 * ag_task_plan: a task declaration's body, as an agent POSTs it, against a
 * fixed policy, directly or as a child of a live task; then a renewal of
 * the task planned, and its budget.
 *
 * Input: FLAGS BODY
 *   FLAGS & 1        declare as a child of the fixture's parent task
 *   (FLAGS >> 1) & 3 the agent: a, b, c, z (z is in no intent)
 *   FLAGS >> 3       the renewal: at now + that many minutes, asking for
 *                    that many minutes of ttl (0: the intent's max_ttl)
 *
 * Oracles on success: the task is the agent's, of an intent that lists it,
 * with tools of that intent (and of the parent), no longer than max_ttl nor
 * than the parent; a child's depth and chain extend the parent's; it mints
 * into a token that verifies. A renewal never shortens the task and never
 * passes max_lifetime or the parent. A spent budget asks to retry later.
 */

#include <openssl/sha.h>

#include "fuzz.h"
#include "ag_json.h"
#include "ag_task.h"


#define AG_FUZZ_TASK_ISS  "https://gw.example"


static const char  ag_fuzz_task_policy[] =
    "{\"agentgov\": 1, \"default\": \"deny\","
    " \"agents\": {\"a\": {\"spiffe\": \"spiffe://x/a\", \"owner\": \"team-a\"},"
    "            \"b\": {\"spiffe\": \"spiffe://x/b\", \"owner\": \"team-b\"},"
    "            \"c\": {\"spiffe\": \"spiffe://x/c\", \"owner\": \"team-c\"},"
    "            \"z\": {\"spiffe\": \"spiffe://x/z\", \"owner\": \"team-z\"}},"
    " \"tools\": {\"t1\": {}, \"t2\": {}, \"t3\": {}, \"other\": {}},"
    " \"intents\": {"
    "   \"triage\": {\"agents\": [\"a\", \"b\", \"c\"],"
    "              \"tools\": [\"t1\", \"t2\", \"t3\"], \"max_ttl\": \"15m\","
    "              \"budget\": {\"calls\": 3, \"rate\": \"2/s\"}},"
    "   \"shallow\": {\"agents\": [\"a\", \"b\", \"c\"], \"tools\": [\"t1\", \"t2\"],"
    "               \"max_ttl\": \"1h\", \"max_lifetime\": \"2h\","
    "               \"max_depth\": 1, \"budget\": {\"rate\": \"5/m\"}},"
    "   \"flat\": {\"agents\": [\"a\", \"b\"], \"tools\": [\"t1\"],"
    "            \"max_ttl\": \"1h\", \"max_depth\": 0},"
    "   \"other\": {\"agents\": [\"a\", \"b\"], \"tools\": [\"other\"],"
    "             \"max_ttl\": \"1h\", \"budget\": {\"calls\": 1}}},"
    " \"rules\": []}";


static ag_policy_t    *ag_fuzz_policy;
static unsigned char   ag_fuzz_task_key[32];
static ag_task_t       ag_fuzz_parent;
static char            ag_fuzz_parent_buf[AG_TASK_PLAN_BUF];
static json_t         *ag_fuzz_parent_body;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char              err[512];
    static const char label[] = "agentgov-fuzz:task";
    ag_task_error_t   e;

    (void) argc;
    (void) argv;

    SHA256((const unsigned char *) label, sizeof(label) - 1, ag_fuzz_task_key);

    ag_fuzz_policy = ag_policy_load(ag_fuzz_task_policy,
                                    sizeof(ag_fuzz_task_policy) - 1, err,
                                    sizeof(err));
    if (ag_fuzz_policy == NULL) {
        ag_fuzz_fail("fixed policy: %s", err);
    }

    /* the parent: agent a's triage task over t1 and t2, for 15 minutes */
    ag_fuzz_parent_body = json_pack("{s:s,s:s,s:[s,s],s:s}", "intent",
                                    "triage", "ttl", "15m", "tools", "t1",
                                    "t2", "purpose", "parent");
    if (ag_fuzz_parent_body == NULL
        || ag_task_plan(ag_fuzz_policy,
                        ag_policy_agent_by_name(ag_fuzz_policy, "a", 1),
                        (ag_str_t) ag_str_null, ag_fuzz_parent_body, NULL,
                        AG_FUZZ_NOW, &ag_fuzz_parent, ag_fuzz_parent_buf,
                        sizeof(ag_fuzz_parent_buf), &e) != 0)
    {
        ag_fuzz_fail("fixture parent task refused");
    }
    return 0;
}


static int
ag_fuzz_in(const char *const *list, size_t n, const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0) {
            return 1;
        }
    }
    return 0;
}


static void
ag_fuzz_planned(const ag_task_t *t, const ag_agent_t *agent,
    const ag_task_t *parent)
{
    char                 *tok, err[256];
    size_t                pos, start;
    json_t               *claims, *j;
    ag_task_t             u;
    const ag_intent_t    *in;

    ag_fuzz_assert(t->agent.len == strlen(agent->name)
                   && memcmp(t->agent.p, agent->name, t->agent.len) == 0);

    in = ag_policy_intent(ag_fuzz_policy, t->intent.p, t->intent.len);
    ag_fuzz_assert(in != NULL);
    ag_fuzz_assert(ag_fuzz_in(in->agents, in->nagents, agent->name,
                              strlen(agent->name)));

    for (pos = 0, start = 0; pos <= t->tools.len; pos++) {
        if (pos < t->tools.len && t->tools.p[pos] != ',') {
            continue;
        }
        ag_fuzz_assert(ag_fuzz_in(in->tools, in->ntools, t->tools.p + start,
                                  pos - start));
        ag_fuzz_assert(parent == NULL
                       || ag_task_has_tool(parent->tools, t->tools.p + start,
                                           pos - start));
        start = pos + 1;
    }

    ag_fuzz_assert(t->expires > AG_FUZZ_NOW
                   && t->expires <= AG_FUZZ_NOW + in->max_ttl);

    if (parent != NULL) {
        ag_fuzz_assert(t->depth == parent->depth + 1);
        ag_fuzz_assert(t->depth <= in->max_depth);
        ag_fuzz_assert(t->expires <= parent->expires);
        ag_fuzz_assert(t->parent.len == parent->id.len
                       && memcmp(t->parent.p, parent->id.p, t->parent.len)
                          == 0);
        /* depth 1 under a root: "parent-agent>agent" */
        ag_fuzz_assert(t->chain.len == parent->agent.len + 1 + t->agent.len
                       && memcmp(t->chain.p, parent->agent.p,
                                 parent->agent.len) == 0);
    } else {
        ag_fuzz_assert(t->depth == 0 && t->chain.len == 0
                       && t->parent.len == 0);
    }

    if (ag_task_token_mint(ag_fuzz_task_key, AG_FUZZ_TASK_ISS, t, AG_FUZZ_NOW,
                           &tok, err, sizeof(err)) != 0)
    {
        ag_fuzz_fail("a planned task does not mint: %s", err);
    }
    claims = NULL;
    if (ag_task_token_verify(ag_fuzz_task_key, AG_FUZZ_TASK_ISS, tok, strlen(tok),
                             AG_FUZZ_NOW, &claims, &u, err, sizeof(err))
        != AG_TASK_TOKEN_OK)
    {
        ag_fuzz_fail("a planned task's token does not verify: %s", err);
    }
    json_decref(claims);
    free(tok);

    j = ag_task_to_json(t, AG_FUZZ_NOW);
    ag_fuzz_assert(j != NULL);
    json_decref(j);
}


static void
ag_fuzz_renew(const ag_task_t *t, const ag_task_t *parent, int minutes)
{
    int                  rc;
    int64_t              now, expires;
    ag_task_error_t      e;
    const ag_intent_t   *in;

    now = AG_FUZZ_NOW + (int64_t) minutes * 60;
    expires = 0;
    rc = ag_task_plan_renew(ag_fuzz_policy, t, parent, (int64_t) minutes * 60,
                            now, &expires, &e);
    if (rc != 0) {
        ag_fuzz_assert(e.status == 400 || e.status == 403);
        return;
    }

    in = ag_policy_intent(ag_fuzz_policy, t->intent.p, t->intent.len);
    ag_fuzz_assert(in != NULL);
    ag_fuzz_assert(expires >= t->expires);
    ag_fuzz_assert(expires > now);
    ag_fuzz_assert(expires <= t->granted + in->max_lifetime
                   || expires == t->expires);
    ag_fuzz_assert(parent == NULL || expires <= parent->expires
                   || expires == t->expires);
}


static void
ag_fuzz_budget(ag_task_t *t)
{
    int                  i;
    int64_t              retry;
    const ag_intent_t   *in;

    in = ag_policy_intent(ag_fuzz_policy, t->intent.p, t->intent.len);
    for (i = 0; i < 8; i++) {
        retry = 0;
        if (ag_task_budget_spend(in, t, AG_FUZZ_NOW * 1000 + i * 100, &retry)
            != 0)
        {
            ag_fuzz_assert(retry >= 1);
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 flags, rc;
    char                buf[AG_TASK_PLAN_BUF], err[256], who[2];
    json_t             *body;
    ag_task_t           t;
    ag_task_error_t     e;
    const ag_task_t    *parent;
    const ag_agent_t   *agent;

    /* the parent's strings point into its body, which must stay */
    ag_fuzz_assert(ag_fuzz_parent_body != NULL);

    if (size < 1) {
        return 0;
    }
    flags = data[0];

    body = ag_json_parse((const char *) data + 1, size - 1, err, sizeof(err));
    if (body == NULL) {
        return 0;
    }

    who[0] = "abcz"[(flags >> 1) & 3];
    who[1] = '\0';
    agent = ag_policy_agent_by_name(ag_fuzz_policy, who, 1);
    parent = (flags & 1) ? &ag_fuzz_parent : NULL;

    memset(&e, 0, sizeof(e));
    rc = ag_task_plan(ag_fuzz_policy, agent, (ag_str_t) ag_str_null, body,
                      parent, AG_FUZZ_NOW, &t, buf, sizeof(buf), &e);

    if (ag_fuzz_debug()) {
        fprintf(stderr, "plan: %d %s %s\n", rc == 0 ? 201 : e.status,
                rc == 0 ? "" : e.code, rc == 0 ? "" : e.message);
    }

    if (rc == 0) {
        ag_fuzz_planned(&t, agent, parent);
        ag_fuzz_renew(&t, parent, flags >> 3);
        ag_fuzz_budget(&t);
    } else {
        ag_fuzz_assert(e.status == 400 || e.status == 403);
        ag_fuzz_assert(e.code != NULL && e.message[0] != '\0');
    }

    json_decref(body);
    return 0;
}
