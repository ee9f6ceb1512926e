/*
 * ag_task_token_verify: the task token an agent presents on every call. Its
 * header is fixed to the byte and the MAC is checked before the payload is
 * parsed, so raw bytes alone never get past the MAC; the structured mode
 * MACs the fuzzer's payload with the fixture's key, so that the claim
 * reader behind the MAC is fuzzed too.
 *
 * Input: 'r' TOKEN          raw token bytes
 *        anything else      the first byte dropped, the rest is the payload
 *                           JSON, under the exact header, MAC'd
 *
 * Oracles on success: the task has the shape mint insists on (valid id;
 * depth 0 without parent and chain, or a chain of depth + 1 agents ending
 * with the task's own), it has not expired, and minting it again gives a
 * token that verifies to the same task.
 */

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "fuzz.h"
#include "ag_task.h"


#define AG_FUZZ_TASK_ISS     "https://gw.example"
#define AG_FUZZ_TASK_HEADER  "{\"alg\":\"HS256\",\"typ\":\"agentgov-task+jwt\"}"


static unsigned char  ag_fuzz_task_key[32];


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char  label[] = "agentgov-fuzz:task";

    (void) argc;
    (void) argv;
    SHA256((const unsigned char *) label, sizeof(label) - 1, ag_fuzz_task_key);
    return 0;
}


/* header.payload.mac under the fixture's key */
static char *
ag_fuzz_task_jws(const void *payload, size_t plen)
{
    char            *h, *p, *m, *tok;
    size_t           n, maclen;
    unsigned char    mac[32];

    h = ag_fuzz_b64(AG_FUZZ_TASK_HEADER, sizeof(AG_FUZZ_TASK_HEADER) - 1);
    p = ag_fuzz_b64(payload, plen);
    n = strlen(h) + 1 + strlen(p);
    tok = malloc(n + 1 + 44 + 1);
    if (tok == NULL) {
        ag_fuzz_fail("out of memory");
    }
    snprintf(tok, n + 1, "%s.%s", h, p);

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, ag_fuzz_task_key,
                  sizeof(ag_fuzz_task_key), (const unsigned char *) tok, n, mac,
                  sizeof(mac), &maclen) == NULL)
    {
        ag_fuzz_fail("HMAC failed");
    }
    m = ag_fuzz_b64(mac, sizeof(mac));
    tok[n] = '.';
    strcpy(tok + n + 1, m);

    free(h);
    free(p);
    free(m);
    return tok;
}


static int
ag_fuzz_str_eq(ag_str_t a, ag_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}


static void
ag_fuzz_task_ok(const ag_task_t *t)
{
    size_t  i, n;

    ag_fuzz_assert(ag_task_id_valid(t->id.p, t->id.len));
    ag_fuzz_assert(t->agent.len > 0 && t->intent.len > 0 && t->tools.len > 0);
    ag_fuzz_assert(t->expires > AG_FUZZ_NOW);
    ag_fuzz_assert(t->depth >= 0);
    ag_fuzz_assert(t->cnf.len == 0 || t->cnf.len == AG_TASK_CNF_LEN);

    if (t->depth == 0) {
        ag_fuzz_assert(t->parent.len == 0 && t->chain.len == 0);
        return;
    }

    ag_fuzz_assert(ag_task_id_valid(t->parent.p, t->parent.len));
    for (i = 0, n = 1; i < t->chain.len; i++) {
        n += (t->chain.p[i] == '>');
    }
    ag_fuzz_assert(n == (size_t) t->depth + 1);
    ag_fuzz_assert(t->chain.len > t->agent.len
                   && t->chain.p[t->chain.len - t->agent.len - 1] == '>'
                   && memcmp(t->chain.p + t->chain.len - t->agent.len,
                             t->agent.p, t->agent.len) == 0);
}


/* mint t again, verify, compare */
static void
ag_fuzz_round_trip(const ag_task_t *t)
{
    char                    *tok, err[256];
    json_t                  *claims, *j;
    ag_task_t                u;
    ag_task_token_status_t   st;

    if (ag_task_token_mint(ag_fuzz_task_key, AG_FUZZ_TASK_ISS, t, AG_FUZZ_NOW,
                           &tok, err, sizeof(err)) != 0)
    {
        ag_fuzz_fail("a verified task does not mint: %s", err);
    }

    claims = NULL;
    st = ag_task_token_verify(ag_fuzz_task_key, AG_FUZZ_TASK_ISS, tok, strlen(tok),
                              AG_FUZZ_NOW, &claims, &u, err, sizeof(err));
    if (st != AG_TASK_TOKEN_OK) {
        ag_fuzz_fail("a minted token does not verify: %s", err);
    }

    ag_fuzz_assert(ag_fuzz_str_eq(t->id, u.id)
                   && ag_fuzz_str_eq(t->agent, u.agent)
                   && ag_fuzz_str_eq(t->intent, u.intent)
                   && ag_fuzz_str_eq(t->tools, u.tools)
                   && ag_fuzz_str_eq(t->parent, u.parent)
                   && ag_fuzz_str_eq(t->chain, u.chain)
                   && ag_fuzz_str_eq(t->cnf, u.cnf)
                   && t->depth == u.depth && t->expires == u.expires
                   && u.granted == AG_FUZZ_NOW);

    j = ag_task_to_json(&u, AG_FUZZ_NOW);
    ag_fuzz_assert(j != NULL);
    json_decref(j);
    j = ag_task_tools_json(u.tools);
    ag_fuzz_assert(json_array_size(j) > 0);
    json_decref(j);

    json_decref(claims);
    free(tok);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                    *tok, err[256];
    size_t                   len;
    json_t                  *claims;
    ag_task_t                t;
    ag_task_token_status_t   st;

    if (size < 1) {
        return 0;
    }

    if (data[0] == 'r') {
        tok = ag_fuzz_strndup(data + 1, size - 1);
        len = size - 1;
    } else {
        tok = ag_fuzz_task_jws(data + 1, size - 1);
        len = strlen(tok);
    }

    claims = (json_t *) 1;
    st = ag_task_token_verify(ag_fuzz_task_key, AG_FUZZ_TASK_ISS, tok, len,
                              AG_FUZZ_NOW, &claims, &t, err, sizeof(err));

    if (ag_fuzz_debug()) {
        fprintf(stderr, "task: %d %s\n", (int) st,
                st == AG_TASK_TOKEN_OK ? "" : err);
    }

    if (st == AG_TASK_TOKEN_OK) {
        ag_fuzz_assert(json_is_object(claims));
        ag_fuzz_task_ok(&t);
        ag_fuzz_round_trip(&t);
        json_decref(claims);
    } else {
        ag_fuzz_assert(claims == NULL);
    }

    free(tok);
    return 0;
}
