/*
 * Writes the seeds that cannot be written by hand: tokens signed by the fuzz
 * fixture's keys (t/fuzz/corpus/jwt), JWKS documents of its public keys
 * (corpus/jwks), DER certificates issued by its SPIFFE CAs
 * (corpus/spiffe) and task tokens MAC'd with its task key (corpus/task). The EC and Ed25519 keys are derived from fixed labels,
 * so these seeds verify in every run of the targets; RS256 ones do not (the
 * RSA key is new in every run) and are there for their shape.
 *
 *   gen_seeds DIR          (make fuzz-seeds: DIR is t/fuzz/corpus)
 *
 * Files are named gen-*; hand-written seeds and crashers are left alone.
 */

#include <errno.h>
#include <sys/stat.h>

#include <openssl/x509.h>

#include <openssl/sha.h>

#include "fuzz.h"
#include "ag_task.h"


static const char  *ag_dir;


static void
ag_write(const char *target, const char *name, const void *data, size_t len)
{
    char   path[512];
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", ag_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        ag_fuzz_fail("mkdir %s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/%s/gen-%s", ag_dir, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        ag_fuzz_fail("cannot write %s", path);
    }
}


static void
ag_write_str(const char *target, const char *name, const char *s)
{
    ag_write(target, name, s, strlen(s));
}


/* --- tokens ------------------------------------------------------------------ */

#define P_OK  "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":\"" AG_FUZZ_AUD "\"," \
              "\"sub\":\"agent-1\",\"exp\":1750000300}"


static void
ag_token(const char *name, EVP_PKEY *key, const char *hdr, const char *payload,
    int der)
{
    char  *tok = ag_fuzz_jws(key, hdr, strlen(hdr), payload, strlen(payload),
                             der);

    ag_write_str("jwt", name, tok);
    free(tok);
}


static void
ag_tokens(const ag_fuzz_jwt_fx_t *fx)
{
    char  *tok;

    ag_token("es256-ok", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\","
             "\"typ\":\"JWT\"}", P_OK, 0);
    ag_token("eddsa-ok", fx->ed1, "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}",
             "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":[\"x\",\"" AG_FUZZ_AUD
             "\"],\"exp\":1750000300,\"nbf\":1749999000,\"iat\":1749999000,"
             "\"groups\":[\"ops\"]}", 0);
    ag_token("rs256-shape", fx->rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
             P_OK, 0);
    ag_token("iss2-nokid-ok", fx->other, "{\"alg\":\"ES256\"}",
             "{\"iss\":\"" AG_FUZZ_ISS2 "\",\"aud\":\"" AG_FUZZ_AUD "\","
             "\"exp\":1750000300.5}", 0);
    ag_token("expired", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
             "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":\"" AG_FUZZ_AUD "\","
             "\"exp\":1749999000}", 0);
    ag_token("not-yet", fx->ed1, "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}",
             "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":\"" AG_FUZZ_AUD "\","
             "\"exp\":1750009000,\"nbf\":1750001000}", 0);
    ag_token("wrong-aud", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
             "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":\"https://evil\","
             "\"exp\":1750000300}", 0);
    ag_token("untrusted-key", fx->evil_ec, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
             P_OK, 0);
    ag_token("der-sig", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", P_OK,
             1);
    ag_token("alg-mismatch", fx->ed1, "{\"alg\":\"ES256\",\"kid\":\"ed1\"}",
             P_OK, 0);
    ag_token("gateway-typ", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\","
             "\"typ\":\"application/agentgov-task+jwt\"}", P_OK, 0);
    ag_token("crit", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\","
             "\"crit\":[\"exp\"]}", P_OK, 0);
    ag_token("jwk-header", fx->evil_ed, "{\"alg\":\"EdDSA\",\"jwk\":{\"kty\":"
             "\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}}", P_OK, 0);
    ag_token("alg-none", NULL, "{\"alg\":\"none\"}", P_OK, 0);
    ag_token("hs256", NULL, "{\"alg\":\"HS256\",\"kid\":\"ec1\"}", P_OK, 0);
    ag_token("b64-false", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\","
             "\"b64\":false}", P_OK, 0);
    ag_token("kid-number", fx->ec1, "{\"alg\":\"ES256\",\"kid\":7}", P_OK, 0);
    ag_token("dup-claim", fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
             "{\"iss\":\"" AG_FUZZ_ISS "\",\"aud\":\"" AG_FUZZ_AUD "\","
             "\"exp\":1750000300,\"exp\":9999999999}", 0);

    tok = ag_fuzz_jws(fx->ec1, "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", 30,
                      P_OK, strlen(P_OK), 0);
    ag_write("jwt", "two-segments", tok, (size_t) (strrchr(tok, '.') - tok));
    free(tok);

    ag_write_str("jwt", "four-segments", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA.AAAA");
    ag_write_str("jwt", "padded", "eyJhbGciOiJFUzI1NiJ9.e30=.AAAA");
    ag_write_str("jwt", "noncanonical", "eyJhbGciOiJFUzI1NiJ9.e31.AAAB");
    ag_write_str("jwt", "empty-segments", "..");
}


/* --- JWKS ---------------------------------------------------------------------- */

static void
ag_jwks(const ag_fuzz_jwt_fx_t *fx)
{
    char      *text;
    EVP_PKEY  *keys[4];
    const char *kids[4];

    keys[0] = fx->ec1;
    keys[1] = fx->ed1;
    keys[2] = fx->rsa1;
    keys[3] = fx->other;
    kids[0] = "ec1";
    kids[1] = "ed1";
    kids[2] = "rsa1";
    kids[3] = NULL;

    text = ag_fuzz_jwks_text(keys, kids, 3);
    ag_write_str("jwks", "three-kids", text);
    free(text);

    text = ag_fuzz_jwks_text(keys, kids + 3, 1);
    ag_write_str("jwks", "ec-nokid", text);
    free(text);

    kids[1] = "ec1";
    text = ag_fuzz_jwks_text(keys, kids, 2);
    ag_write_str("jwks", "dup-kid", text);
    free(text);

    kids[0] = NULL;
    text = ag_fuzz_jwks_text(keys + 1, kids, 1);
    ag_write_str("jwks", "ed-nokid", text);
    free(text);

    text = ag_fuzz_jwks_text(keys + 2, kids, 2);
    ag_write_str("jwks", "rsa-ec", text);
    free(text);
}


/* --- certificates ---------------------------------------------------------------- */

static void
ag_der(const char *name, X509 *x, X509 *chain)
{
    int             n, m;
    unsigned char  *buf, *p;

    n = i2d_X509(x, NULL);
    m = chain ? i2d_X509(chain, NULL) : 0;
    if (n <= 0 || m < 0) {
        ag_fuzz_fail("i2d_X509 failed");
    }
    buf = malloc((size_t) (n + m));
    if (buf == NULL) {
        ag_fuzz_fail("out of memory");
    }
    p = buf;
    i2d_X509(x, &p);
    if (chain != NULL) {
        i2d_X509(chain, &p);
    }
    ag_write("spiffe", name, buf, (size_t) (n + m));
    free(buf);
    X509_free(x);
}


static void
ag_certs(const ag_fuzz_spiffe_fx_t *fx)
{
    size_t       len[2];
    X509        *inter;
    EVP_PKEY    *ikey;
    const char  *uri[2];

    uri[0] = "spiffe://a.example/ns/prod/sa/agent-1";
    uri[1] = "spiffe://a.example/other";
    len[0] = strlen(uri[0]);
    len[1] = strlen(uri[1]);

    ag_der("leaf-a", ag_fuzz_cert(fx->leaf_key, fx->ca_a, fx->ca_a_key,
                                  "agent", uri, len, 1, 0, "agent.example"),
           NULL);
    ag_der("two-uris", ag_fuzz_cert(fx->leaf_key, fx->ca_a, fx->ca_a_key,
                                    "agent", uri, len, 2, 0, NULL), NULL);
    ag_der("leaf-is-ca", ag_fuzz_cert(fx->leaf_key, fx->ca_a, fx->ca_a_key,
                                      "agent", uri, len, 1, 1, NULL), NULL);
    ag_der("no-san", ag_fuzz_cert(fx->leaf_key, fx->ca_a, fx->ca_a_key,
                                  "agent", uri, len, 0, 0, NULL), NULL);
    ag_der("self-signed", ag_fuzz_cert(fx->leaf_key, NULL, NULL, "agent", uri,
                                       len, 1, 0, NULL), NULL);

    /* domain a's ID, signed by domain b's CA: must never pass */
    ag_der("cross-domain", ag_fuzz_cert(fx->leaf_key, fx->ca_b, fx->ca_b_key,
                                        "agent", uri, len, 1, 0, NULL), NULL);

    uri[0] = "spiffe://b.example/agent/x";
    len[0] = strlen(uri[0]);
    ag_der("leaf-b", ag_fuzz_cert(fx->leaf_key, fx->ca_b, fx->ca_b_key,
                                  "agent", uri, len, 1, 0, NULL), NULL);

    uri[0] = "spiffe://a.example/a/../b";
    len[0] = strlen(uri[0]);
    ag_der("dotdot", ag_fuzz_cert(fx->leaf_key, fx->ca_a, fx->ca_a_key,
                                  "agent", uri, len, 1, 0, NULL), NULL);

    /* a leaf under an intermediate of domain a, the chain sent along */
    ikey = ag_fuzz_key("EC", "spiffe-intermediate-a");
    uri[0] = "spiffe://a.example";
    len[0] = strlen(uri[0]);
    inter = ag_fuzz_cert(ikey, fx->ca_a, fx->ca_a_key, "fuzz-int-a", uri, len,
                         1, 1, NULL);
    uri[0] = "spiffe://a.example/via/intermediate";
    len[0] = strlen(uri[0]);
    ag_der("leaf-via-intermediate",
           ag_fuzz_cert(fx->leaf_key, inter, ikey, "agent", uri, len, 1, 0,
                        NULL), inter);
    X509_free(inter);
    EVP_PKEY_free(ikey);
}


/* --- task tokens ----------------------------------------------------------------- */

static void
ag_task_seed(const unsigned char key[32], const char *name, const char *id,
    const char *agent, const char *tools, const char *parent,
    const char *chain, int depth, const char *cnf)
{
    char       *tok, *dot, *payload, err[256];
    long        n;
    size_t      len;
    ag_task_t   t;

    memset(&t, 0, sizeof(t));
    t.id = (ag_str_t) { id, strlen(id) };
    t.agent = (ag_str_t) { agent, strlen(agent) };
    t.intent = (ag_str_t) { "triage", 6 };
    t.tools = (ag_str_t) { tools, strlen(tools) };
    t.parent = (ag_str_t) { parent, parent ? strlen(parent) : 0 };
    t.chain = (ag_str_t) { chain, chain ? strlen(chain) : 0 };
    t.cnf = (ag_str_t) { cnf, cnf ? strlen(cnf) : 0 };
    t.depth = depth;
    t.expires = AG_FUZZ_NOW + 900;

    if (ag_task_token_mint(key, "https://gw.example", &t, AG_FUZZ_NOW - 60,
                           &tok, err, sizeof(err)) != 0)
    {
        ag_fuzz_fail("task seed %s: %s", name, err);
    }

    /* raw: 'r' and the token */
    len = strlen(tok);
    payload = malloc(len + 2);
    if (payload == NULL) {
        ag_fuzz_fail("out of memory");
    }
    payload[0] = 'r';
    memcpy(payload + 1, tok, len + 1);
    ag_write("task", name, payload, len + 1);

    /* structured: '{' and the payload JSON (the target MACs it) */
    dot = strchr(tok, '.') + 1;
    len = (size_t) (strchr(dot, '.') - dot);
    payload[0] = 'p';
    n = ag_b64url_decode(dot, len, (unsigned char *) payload + 1, len);
    if (n <= 0) {
        ag_fuzz_fail("task seed %s: bad payload", name);
    }
    {
        char  sname[64];

        snprintf(sname, sizeof(sname), "%s-claims", name);
        ag_write("task", sname, payload, (size_t) n + 1);
    }

    free(payload);
    free(tok);
}


static void
ag_tasks(void)
{
    static const char  label[] = "agentgov-fuzz:task";
    unsigned char      key[32];

    SHA256((const unsigned char *) label, sizeof(label) - 1, key);

    ag_task_seed(key, "root", "AAAAAAAAAAAAAAAAAAAAAA", "a", "t1,t2", NULL,
                 NULL, 0, NULL);
    ag_task_seed(key, "child", "BBBBBBBBBBBBBBBBBBBBBA", "b", "t1",
                 "AAAAAAAAAAAAAAAAAAAAAA", "a>b", 1,
                 "00112233445566778899aabbccddeeff"
                 "00112233445566778899aabbccddeeff");
    ag_task_seed(key, "grandchild", "CCCCCCCCCCCCCCCCCCCCCA", "c", "t1",
                 "BBBBBBBBBBBBBBBBBBBBBA", "a>b>c", 2, NULL);
}


int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_seeds DIR\n");
        return 2;
    }
    ag_dir = argv[1];

    ag_tokens(ag_fuzz_jwt_fixture());
    ag_jwks(ag_fuzz_jwt_fixture());
    ag_certs(ag_fuzz_spiffe_fixture());
    ag_tasks();
    return 0;
}
