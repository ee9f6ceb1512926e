/*
 * ag_call_from_json (CALL.json of `agentgov policy eval`, the policy test
 * cases) and then the evaluation of the call against a fixed policy that
 * uses every subject, operator, match field and combinator, with a large
 * (tool, method) cell so that the path index is built: the decision with the
 * index, without it and with a trace must agree. Also the call accessors and
 * ag_subject_value for every subject the rules read, and the RFC 3339 reader
 * against timegm.
 *
 * Input: a CALL.json object.
 */

#include <time.h>

#include "fuzz.h"
#include "ag_call.h"
#include "ag_json.h"
#include "ag_match.h"
#include "ag_policy.h"


#define AG_FUZZ_MAX_HEADERS  32
#define AG_FUZZ_PX_RULES     40


static const char  ag_fuzz_call_policy[] =
    "{\n"
    "  \"agentgov\": 1,\n"
    "  \"agents\": {\n"
    "    \"bot\": {\"jwt\": {\"iss\": \"https://idp.example\", \"sub\": \"bot\"}, \"owner\": \"team\"},\n"
    "    \"helper\": {\"spiffe\": \"spiffe://a.example/agent/helper\", \"owner\": \"team\"}\n"
    "  },\n"
    "  \"groups\": {\"ops\": [{\"jwt\": {\"iss\": \"https://idp.example\", \"groups\": \"ops\"}}]},\n"
    "  \"tools\": {\n"
    "    \"tickets\": {\"hosts\": [\"tickets.internal\", \"*.tickets.example\"]},\n"
    "    \"files\": {\"protocol\": \"mcp\"},\n"
    "    \"pay\": {\"hosts\": [\"pay.internal\"]}\n"
    "  },\n"
    "  \"intents\": {\n"
    "    \"triage\": {\"agents\": [\"bot\"], \"tools\": [\"tickets\", \"files\", \"pay\"], \"max_ttl\": \"15m\"}\n"
    "  },\n"
    "  \"rules\": [\n"
    "    {\"id\": \"export\", \"effect\": \"deny\", \"tool\": \"tickets\", \"method\": \"GET\", \"path\": \"/v1/export/**\"},\n"
    "    {\"id\": \"del\", \"effect\": \"deny\", \"tool\": \"tickets\", \"method\": \"DELETE\"},\n"
    "    {\"id\": \"refund\", \"effect\": \"hold\", \"tool\": \"pay\", \"method\": \"POST\", \"path\": \"/v1/refunds\",\n"
    "     \"when\": {\"body:/amount\": {\"gt\": 5000}}, \"approvers\": [\"ops\"]},\n"
    "    {\"id\": \"cur\", \"effect\": \"deny\", \"tool\": \"pay\", \"method\": \"POST\",\n"
    "     \"when\": {\"not\": {\"body:/currency\": {\"in\": [\"EUR\", \"USD\"]}}}},\n"
    "    {\"id\": \"q\", \"effect\": \"hold\", \"tool\": \"pay\", \"when\": {\"query:amount\": {\"gt\": 5000}}, \"approvers\": [\"ops\"]},\n"
    "    {\"id\": \"hdr\", \"effect\": \"deny\",\n"
    "     \"when\": {\"header:X-Priority\": {\"exists\": true, \"eq\": \"urgent\"}, \"body:/reason\": {\"exists\": false}}},\n"
    "    {\"id\": \"files-read\", \"effect\": \"allow\", \"tool\": \"files\", \"mcp\": {\"tool\": [\"read_file\", \"list_*\"]},\n"
    "     \"when\": {\"args:/path\": {\"glob\": \"/srv/**\"}}},\n"
    "    {\"id\": \"files-re\", \"effect\": \"deny\", \"tool\": \"files\", \"mcp\": {\"method\": \"tools/call\"},\n"
    "     \"when\": {\"args:/path\": {\"regex\": \"/etc/.*|.*\\\\.ssh/.*\"}}},\n"
    "    {\"id\": \"res\", \"effect\": \"allow\", \"tool\": \"files\", \"mcp\": {\"resource\": \"file:///srv/*\"}},\n"
    "    {\"id\": \"prompt\", \"effect\": \"allow\", \"tool\": \"files\", \"mcp\": {\"prompt\": \"p-*\"}},\n"
    "    {\"id\": \"chain\", \"effect\": \"deny\", \"when\": {\"chain\": {\"glob\": \"*>evil*\"}}},\n"
    "    {\"id\": \"depth\", \"effect\": \"hold\", \"when\": {\"depth\": {\"ge\": 3}}, \"approvers\": [\"ops\"]},\n"
    "    {\"id\": \"hours\", \"effect\": \"deny\", \"mode\": \"monitor\",\n"
    "     \"when\": {\"not\": {\"time\": {\"days\": [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"], \"hours\": \"08:00-18:00\"}}}},\n"
    "    {\"id\": \"night\", \"effect\": \"hold\", \"mode\": \"monitor\", \"approvers\": [\"ops\"],\n"
    "     \"when\": {\"time\": {\"days\": [\"fri\"], \"hours\": \"22:00-06:00\"}}},\n"
    "    {\"id\": \"any\", \"effect\": \"deny\", \"tool\": \"tickets\",\n"
    "     \"when\": {\"any\": [{\"query:dry_run\": {\"eq\": 1}}, {\"header:X-Debug\": {\"regex\": \"on|yes\"}}]}},\n"
    "    {\"id\": \"all\", \"effect\": \"allow\", \"agent\": \"bot\", \"intent\": \"triage\", \"owner\": \"team\",\n"
    "     \"tool\": [\"tickets\", \"pay\"], \"host\": \"*.internal\",\n"
    "     \"when\": {\"all\": [{\"body:/items/0/sku\": {\"ne\": \"x\"}}, {\"query:limit\": {\"le\": 500, \"ge\": 1}}]}},\n"
    "    {\"id\": \"nums\", \"effect\": \"deny\", \"when\": {\"body:/n\": {\"lt\": -1.5}}},\n"
    "    {\"id\": \"bool\", \"effect\": \"deny\", \"when\": {\"body:/flag\": {\"eq\": true}}},\n"
    "    {\"id\": \"null\", \"effect\": \"hold\", \"approvers\": [\"ops\"], \"when\": {\"body:/x~1y\": {\"eq\": null}}},\n"
    "    {\"id\": \"read\", \"effect\": \"allow\", \"tool\": \"tickets\", \"method\": \"GET\",\n"
    "     \"path\": {\"regex\": \"/v1/tickets/[0-9]+\"}},\n"
    "    {\"id\": \"whole\", \"effect\": \"allow\", \"tool\": \"pay\", \"method\": [\"GET\", \"HEAD\"], \"when\": {\"body:\": {\"exists\": false}}}\n"
    "  ],\n"
    "  \"default\": \"deny\"\n"
    "}\n";

static ag_policy_t  *ag_fuzz_policy;


/* The fixed policy plus AG_FUZZ_PX_RULES rules in the cell (tickets, GET),
   enough for its path index: globs with and without a literal head, regexes
   with and without one, every effect. */
static char *
ag_fuzz_policy_text(void)
{
    int           i;
    char          id[32], pat[64];
    char         *text;
    json_t       *doc, *rules, *rule, *path;
    json_error_t  je;

    doc = json_loads(ag_fuzz_call_policy, 0, &je);
    rules = json_object_get(doc, "rules");
    if (rules == NULL) {
        ag_fuzz_fail("fixed policy: %s", je.text);
    }

    for (i = 0; i < AG_FUZZ_PX_RULES; i++) {
        snprintf(id, sizeof(id), "px-%d", i);
        switch (i % 5) {
        case 0:
            snprintf(pat, sizeof(pat), "/v1/p%d/**", i);
            path = json_string(pat);
            break;
        case 1:
            snprintf(pat, sizeof(pat), "/v1/p%d/*/x", i);
            path = json_pack("[s,s]", pat, "/v2/**");
            break;
        case 2:
            snprintf(pat, sizeof(pat), "/v1/r%d/[a-z]+(/[0-9]+)?", i);
            path = json_pack("{s:s}", "regex", pat);
            break;
        case 3:
            snprintf(pat, sizeof(pat), "*/q%d", i);
            path = json_string(pat);
            break;
        default:
            snprintf(pat, sizeof(pat), "(/v1/s%d|/v1/t)/.*", i);
            path = json_pack("{s:s}", "regex", pat);
            break;
        }

        rule = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", id,
                         "effect", i % 3 == 0 ? "allow"
                                   : i % 3 == 1 ? "deny" : "hold",
                         "tool", "tickets", "method", "GET", "path", path);
        if (i % 3 == 2) {
            json_object_set_new(rule, "approvers", json_pack("[s]", "ops"));
        }
        if (i % 7 == 0) {
            json_object_set_new(rule, "when",
                                json_pack("{s:{s:s}}", "header:X-Px",
                                          "eq", "on"));
        }
        if (i % 11 == 5) {
            json_object_set_new(rule, "mode", json_string("monitor"));
        }
        json_array_append_new(rules, rule);
    }

    text = json_dumps(doc, 0);
    json_decref(doc);
    if (text == NULL) {
        ag_fuzz_fail("out of memory");
    }
    return text;
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char   err[512], *text;

    (void) argc;
    (void) argv;

    text = ag_fuzz_policy_text();
    ag_fuzz_policy = ag_policy_load(text, strlen(text), err, sizeof(err));
    free(text);
    if (ag_fuzz_policy == NULL) {
        ag_fuzz_fail("fixed policy: %s", err);
    }
    return 0;
}


/* The reader of "time" against timegm. */
static void
ag_fuzz_check_time(json_t *v, int64_t now)
{
    int          oh, om, sec;
    struct tm    tm;
    const char  *s, *z;
    size_t       len;
    int64_t      off, want;

    s = json_string_value(v);
    len = json_string_length(v);

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
    tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
    tm.tm_hour = (s[11] - '0') * 10 + (s[12] - '0');
    tm.tm_min = (s[14] - '0') * 10 + (s[15] - '0');
    sec = (s[17] - '0') * 10 + (s[18] - '0');
    tm.tm_sec = sec > 59 ? 59 : sec;

    z = s + len - 1;
    off = 0;
    if (*z != 'Z' && *z != 'z') {
        z = s + len - 6;
        oh = (z[1] - '0') * 10 + (z[2] - '0');
        om = (z[4] - '0') * 10 + (z[5] - '0');
        off = (oh * 60 + om) * 60 * (z[0] == '+' ? 1 : -1);
    }

    want = (int64_t) timegm(&tm) - off;
    if (want != now) {
        ag_fuzz_fail("time \"%s\" read as %lld, timegm says %lld", s,
                     (long long) now, (long long) want);
    }
}


static void
ag_fuzz_subject(const ag_call_t *call, const char *key)
{
    json_t  *v = ag_subject_value(call, key, strlen(key));

    json_decref(v);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc;
    char                err[512], *buf;
    size_t              i, k;
    json_t             *obj, *t;
    ag_str_t            v;
    ag_call_t           call;
    ag_header_t         hdrs[AG_FUZZ_MAX_HEADERS];
    const ag_rule_t    *r;
    static const char  *const rule_ids[] = {
        "refund", "cur", "q", "hdr", "files-read", "files-re", "chain",
        "depth", "any", "all", "nums", "bool", "null", "whole", "px-0",
        NULL
    };
    static const char  *const keys[] = {
        "body:", "body:/", "body:/a/0", "args:", "args:/path", "header:Host",
        "query:", "query:a", "chain", "depth", "time", "nonsense", "body",
        NULL
    };

    obj = ag_json_parse((const char *) data, size, err, sizeof(err));
    if (obj == NULL) {
        return 0;
    }

    rc = ag_call_from_json(obj, &call, hdrs, AG_FUZZ_MAX_HEADERS, err,
                           sizeof(err));
    if (rc != 0) {
        ag_fuzz_assert(err[0] == '/');
        json_decref(obj);
        return 0;
    }

    ag_fuzz_assert(call.nheaders <= AG_FUZZ_MAX_HEADERS);
    ag_fuzz_assert(call.nheaders == 0 || call.headers == hdrs);

    t = json_object_get(obj, "time");
    if (t != NULL) {
        ag_fuzz_check_time(t, call.now);
    } else {
        /* the wall clock would make runs irreproducible */
        call.now = AG_FUZZ_NOW;
    }

    ag_fuzz_eval(ag_fuzz_policy, &call);

    /* lookups by what the call names */
    (void) ag_policy_tool(ag_fuzz_policy, call.tool.p, call.tool.len);
    (void) ag_policy_tool_by_host(ag_fuzz_policy, call.host.p, call.host.len);
    (void) ag_policy_agent_by_name(ag_fuzz_policy, call.agent.p,
                                   call.agent.len);
    (void) ag_policy_intent(ag_fuzz_policy, call.intent.p, call.intent.len);

    /* what an approver is shown */
    for (i = 0; rule_ids[i] != NULL; i++) {
        r = ag_policy_rule(ag_fuzz_policy, rule_ids[i], strlen(rule_ids[i]));
        ag_fuzz_assert(r != NULL);
        for (k = 0; k < r->nreads; k++) {
            ag_fuzz_subject(&call, r->reads[k]);
        }
    }
    for (i = 0; keys[i] != NULL; i++) {
        ag_fuzz_subject(&call, keys[i]);
    }
    for (i = 0; i < call.nheaders; i++) {
        buf = malloc(call.headers[i].name.len + sizeof("header:"));
        if (buf == NULL) {
            break;
        }
        memcpy(buf, "header:", 7);
        memcpy(buf + 7, call.headers[i].name.p, call.headers[i].name.len);
        buf[7 + call.headers[i].name.len] = '\0';
        ag_fuzz_subject(&call, buf);
        ag_fuzz_assert(ag_call_header(&call, call.headers[i].name.p,
                                      call.headers[i].name.len, &v) >= 1);
        free(buf);
    }

    json_decref(obj);
    return 0;
}
