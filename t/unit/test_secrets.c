/*
 * ag_secrets: the secret scan (every built-in pattern in every place and
 * encoding, allow_secrets, policy patterns, no false positives, limits) and
 * the stripping of headers and query parameters.
 *
 * No realistic token is written here: each fake one is assembled at run
 * time from a split prefix and a run of one repeated character.
 */

#include <openssl/evp.h>

#include "unit_policy.h"
#include "ag_secrets.h"


#define NFAKE  10

typedef struct {
    const char  *pattern;
    char        *text;      /* as it appears in a request */
    char        *secret;    /* the part that is hashed */
} fake_t;

static fake_t  fakes[NFAKE];


static char *
cat3(const char *a, const char *b, int c, size_t n)
{
    size_t  la = strlen(a), lb = strlen(b);
    char   *s = malloc(la + lb + n + 1);

    assert_non_null(s);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memset(s + la + lb, c, n);
    s[la + lb + n] = '\0';
    return s;
}


static void
fake_set(size_t i, const char *pattern, char *text, const char *secret)
{
    fakes[i].pattern = pattern;
    fakes[i].text = text;
    fakes[i].secret = strdup(secret != NULL ? secret : text);
    assert_non_null(fakes[i].secret);
}


static int
setup_fakes(void **state)
{
    char  *t;

    (void) state;

    fake_set(0, "aws_access_key", cat3("AK", "IA", 'A', 16), NULL);

    t = cat3("aws_secret", "_access_key=", 'A', 40);
    fake_set(1, "aws_secret_key", t, t + strlen(t) - 40);

    fake_set(2, "github_token", cat3("gh", "p_", 'A', 36), NULL);
    fake_set(3, "gitlab_token", cat3("gl", "pat-", 'A', 20), NULL);
    fake_set(4, "slack_token", cat3("xo", "xb-1111111111-", 'A', 12), NULL);
    fake_set(5, "stripe_key", cat3("sk", "_live_", 'A', 24), NULL);
    fake_set(6, "openai_key", cat3("sk", "-proj-", 'A', 24), NULL);
    fake_set(7, "google_api_key", cat3("AI", "za", 'A', 35), NULL);
    fake_set(8, "private_key",
             cat3("-----BEGIN ", "RSA PRIVATE KEY-----", 'x', 0), NULL);
    fake_set(9, "jwt", cat3("ey", "JAAAAAAA.eyJAAAAAAA.", 'A', 12), NULL);

    return 0;
}


static int
teardown_fakes(void **state)
{
    size_t  i;

    (void) state;
    for (i = 0; i < NFAKE; i++) {
        free(fakes[i].text);
        free(fakes[i].secret);
    }
    return 0;
}


static void
sha8_of(const char *s, size_t len, char out[9])
{
    static const char  digits[] = "0123456789abcdef";
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       n;
    int                i;

    assert_int_equal(EVP_Digest(s, len, md, &n, EVP_sha256(), NULL), 1);
    for (i = 0; i < 4; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0x0f];
    }
    out[8] = '\0';
}


static ag_secrets_t *
secrets(const ag_policy_t *p)
{
    char           err[256];
    ag_secrets_t  *s = ag_secrets_new(p, err, sizeof(err));

    if (s == NULL) {
        fail_msg("ag_secrets_new: %s", err);
    }
    return s;
}


/* Scan a call of these headers ("Name: value" lines joined by '\n', may be
   NULL), query and body; fails the test on a scan error. */
static int
scan(const ag_secrets_t *s, const ag_tool_t *tool, const char *headers,
    const char *query, const char *body, size_t blen, ag_finding_t *out,
    size_t max)
{
    int          n;
    char         err[256], *hcopy, *line, *next, *colon;
    ag_call_t    call;
    ag_header_t  hdrs[32];

    memset(&call, 0, sizeof(call));
    hcopy = NULL;

    if (headers != NULL) {
        hcopy = strdup(headers);
        assert_non_null(hcopy);
        for (line = hcopy; line != NULL; line = next) {
            next = strchr(line, '\n');
            if (next != NULL) {
                *next++ = '\0';
            }
            colon = strchr(line, ':');
            assert_non_null(colon);
            assert_true(call.nheaders < 32);
            hdrs[call.nheaders].name.p = line;
            hdrs[call.nheaders].name.len = (size_t) (colon - line);
            colon++;
            while (*colon == ' ') {
                colon++;
            }
            hdrs[call.nheaders].value.p = colon;
            hdrs[call.nheaders].value.len = strlen(colon);
            call.nheaders++;
        }
        call.headers = hdrs;
    }

    if (query != NULL) {
        call.query.p = query;
        call.query.len = strlen(query);
    }

    n = ag_secrets_scan(s, tool, &call, body, blen, out, max, err,
                        sizeof(err));
    free(hcopy);
    if (n < 0) {
        fail_msg("ag_secrets_scan: %s", err);
    }
    return n;
}


static int
scan_body(const ag_secrets_t *s, const char *body, ag_finding_t *out,
    size_t max)
{
    return scan(s, NULL, NULL, NULL, body, strlen(body), out, max);
}


/* exactly one finding: fake i's pattern, sha8 and where */
static void
assert_one(int n, const ag_finding_t *f, size_t i, const char *where)
{
    char  sha8[9];

    if (n != 1) {
        fail_msg("%s in %s: %d findings", fakes[i].pattern, where, n);
    }
    sha8_of(fakes[i].secret, strlen(fakes[i].secret), sha8);
    assert_string_equal(f[0].pattern, fakes[i].pattern);
    assert_string_equal(f[0].sha8, sha8);
    assert_string_equal(f[0].where, where);
}


/* text with its first byte as %XX (enc 'p') or \u00XX (enc 'j') */
static char *
encode_first(const char *text, int enc)
{
    char    *s = malloc(strlen(text) + 8);

    assert_non_null(s);
    if (enc == 'p') {
        sprintf(s, "%%%02X%s", (unsigned char) text[0], text + 1);
    } else {
        sprintf(s, "\\u%04x%s", (unsigned char) text[0], text + 1);
    }
    return s;
}


static void
builtin_names_are_the_policys(void **state)
{
    char           buf[1024];
    size_t         i, n;
    ag_secrets_t  *s = secrets(NULL);
    ag_policy_t   *p;

    (void) state;
    assert_int_equal(ag_secrets_count(s), NFAKE);
    assert_null(ag_secrets_pattern(s, NFAKE, NULL));

    /* a tool may allow every built-in pattern by name */
    n = (size_t) snprintf(buf, sizeof(buf),
                          "{'agentgov': 1, 'tools': {'t': {'allow_secrets': [");
    for (i = 0; i < NFAKE; i++) {
        assert_string_equal(ag_secrets_pattern(s, i, NULL), fakes[i].pattern);
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s'%s'",
                               i ? ", " : "", fakes[i].pattern);
    }
    snprintf(buf + n, sizeof(buf) - n, "]}}}");
    p = load(buf);
    ag_policy_free(p);
    ag_secrets_free(s);
}


static void
every_pattern_in_a_header(void **state)
{
    char           h[512];
    size_t         i;
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;
    for (i = 0; i < NFAKE; i++) {
        snprintf(h, sizeof(h), "Accept: */*\nX-Data: %s", fakes[i].text);
        assert_one(scan(s, NULL, h, NULL, NULL, 0, f, 4), f, i, "header");

        snprintf(h, sizeof(h), "Authorization: Bearer %s", fakes[i].text);
        assert_one(scan(s, NULL, h, NULL, NULL, 0, f, 4), f, i, "header");
    }
    ag_secrets_free(s);
}


static void
every_pattern_in_a_query(void **state)
{
    char           qs[512], *e;
    size_t         i;
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;
    for (i = 0; i < NFAKE; i++) {
        snprintf(qs, sizeof(qs), "a=1&q=%s&b=2", fakes[i].text);
        assert_one(scan(s, NULL, NULL, qs, NULL, 0, f, 4), f, i, "query");

        /* only the decoded query holds it */
        e = encode_first(fakes[i].text, 'p');
        snprintf(qs, sizeof(qs), "a=1&q=%s", e);
        assert_one(scan(s, NULL, NULL, qs, NULL, 0, f, 4), f, i, "query");
        free(e);

        /* in a parameter's name, spaces as '+' */
        snprintf(qs, sizeof(qs), "a=1&x+%s", fakes[i].text);
        assert_one(scan(s, NULL, NULL, qs, NULL, 0, f, 4), f, i, "query");
    }
    ag_secrets_free(s);
}


static void
every_pattern_in_a_body(void **state)
{
    char           b[512], *e;
    size_t         i;
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;
    for (i = 0; i < NFAKE; i++) {
        snprintf(b, sizeof(b), "{\"k\": \"%s\", \"n\": 1}", fakes[i].text);
        assert_one(scan_body(s, b, f, 4), f, i, "body");

        /* JSON-escaped first byte: only the decoded body holds it */
        e = encode_first(fakes[i].text, 'j');
        snprintf(b, sizeof(b), "{\"k\": \"%s\"}", e);
        assert_one(scan_body(s, b, f, 4), f, i, "body");
        free(e);

        /* a form body */
        e = encode_first(fakes[i].text, 'p');
        snprintf(b, sizeof(b), "a=1&k=%s", e);
        assert_one(scan_body(s, b, f, 4), f, i, "body");
        free(e);

        /* a JSON document in a JSON string: escaped twice */
        e = encode_first(fakes[i].text, 'j');
        snprintf(b, sizeof(b), "{\"doc\": \"{\\\"k\\\": \\\"\\%s\\\"}\"}", e);
        assert_one(scan_body(s, b, f, 4), f, i, "body");
        free(e);
    }
    ag_secrets_free(s);
}


static void
json_escapes(void **state)
{
    char           b[512], sha8[9], *t;
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;

    /* \/ inside an AWS secret, after a name in a JSON object */
    t = cat3("AAAA", "/", 'A', 35);
    snprintf(b, sizeof(b), "{\"SecretAccessKey\": \"AAAA\\/%s\"}", t + 5);
    assert_int_equal(scan_body(s, b, f, 4), 1);
    assert_string_equal(f[0].pattern, "aws_secret_key");
    sha8_of(t, 40, sha8);
    assert_string_equal(f[0].sha8, sha8);
    free(t);

    /* a surrogate pair and escaped newlines around a key */
    snprintf(b, sizeof(b), "\"\\ud83d\\ude00\\n%s\\n\"", fakes[2].text);
    assert_one(scan_body(s, b, f, 4), f, 2, "body");

    /* the PEM header spelled with \u escapes for every dash */
    snprintf(b, sizeof(b), "\"\\u002d\\u002d\\u002d\\u002D\\u002d%s\"",
             fakes[8].text + 5);
    assert_one(scan_body(s, b, f, 4), f, 8, "body");

    /* lone surrogates and bad escapes stay as they are */
    assert_int_equal(scan_body(s, "\"\\ud800 \\udc00 \\x \\u12 \\", f, 4), 0);

    /* a percent-escape spelled as \u0025 */
    snprintf(b, sizeof(b), "{\"u\": \"https://x/?k=\\u002541%s\"}",
             fakes[0].text + 1);
    assert_one(scan_body(s, b, f, 4), f, 0, "body");

    ag_secrets_free(s);
}


static void
aws_secret_needs_its_name(void **state)
{
    char           b[256], *forty = cat3("", "", 'A', 40);
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);
    static const char *const  ok[] = {
        "AWS_SECRET_ACCESS_KEY=%s", "aws_secret_key: %s",
        "{\"secretAccessKey\": \"%s\"}",
        "<SecretAccessKey>%s</SecretAccessKey>",
        "secret_access_key = '%s'", "my-aws-secret-key %s", NULL
    };
    static const char *const  no[] = {
        "%s", "value=%s", "secret=%s", "secret_key=%s", "access_key=%s",
        "aws_secret_access_key=%sA", "aws_secret_access_key=x%s",
        "aws_secret_access_key:          %s", NULL
    };
    size_t  i;

    (void) state;
    for (i = 0; ok[i] != NULL; i++) {
        snprintf(b, sizeof(b), ok[i], forty);
        assert_int_equal(scan_body(s, b, f, 4), 1);
        assert_string_equal(f[0].pattern, "aws_secret_key");
    }
    for (i = 0; no[i] != NULL; i++) {
        snprintf(b, sizeof(b), no[i], forty);
        if (scan_body(s, b, f, 4) != 0) {
            fail_msg("false positive on \"%s\"", no[i]);
        }
    }
    free(forty);
    ag_secrets_free(s);
}


static void
boundaries(void **state)
{
    char           b[512];
    size_t         i;
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;
    for (i = 0; i < NFAKE; i++) {
        if (i == 1 || i == 8) {
            continue;       /* a name before it; a PEM line */
        }
        /* inside a longer run of token characters: not a token */
        snprintf(b, sizeof(b), "Zz9%s", fakes[i].text);
        if (scan_body(s, b, f, 4) != 0) {
            fail_msg("%s found inside a run", fakes[i].pattern);
        }
    }

    /* too short, or fixed-length ones followed by more */
    assert_int_equal(scan_body(s, "xoxb-12345", f, 4), 0);
    snprintf(b, sizeof(b), "%sB", fakes[0].text);
    assert_int_equal(scan_body(s, b, f, 4), 0);
    snprintf(b, sizeof(b), "%sB", fakes[7].text);
    assert_int_equal(scan_body(s, b, f, 4), 0);

    /* "sk-" and kebab-case words */
    assert_int_equal(scan_body(s, "use sk-learn-and-some-other-library here",
                               f, 4), 0);
    assert_int_equal(scan_body(s, "a task-force-of-many-many-people", f, 4),
                     0);

    ag_secrets_free(s);
}


static void
no_false_positives(void **state)
{
    static const char  text[] =
        "{\"title\": \"Quarterly report\", \"body\": \"The AKIA prefix and "
        "ghp_ are just words here; so is eyJ. Ask-the-team about the "
        "sk-learn pipeline.\", \"id\": \"123e4567-e89b-12d3-a456-426614174000"
        "\", \"sha1\": \"da39a3ee5e6b4b0d3255bfef95601890afd80709\", "
        "\"sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
        "7852b855\", \"key_id\": \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123\", "
        "\"path\": \"/v1/tickets/7?expand=owner\", \"n\": 12.5e3}";

    size_t          i, j, n;
    unsigned char   raw[3 * 4096], md[32];
    unsigned int    mdlen;
    char           *blob;
    ag_finding_t    f[4];
    ag_secrets_t   *s = secrets(NULL);

    (void) state;
    assert_int_equal(scan_body(s, text, f, 4), 0);
    assert_int_equal(scan(s, NULL, "User-Agent: Mozilla/5.0 (X11; Linux "
                          "x86_64)\nAccept: application/json\nX-Request-Id: "
                          "123e4567-e89b-12d3-a456-426614174000",
                          "page=2&sort=-created&q=hello+world%21", NULL, 0, f,
                          4), 0);

    /* base64 blobs of pseudo-random bytes, both alphabets */
    for (i = 0; i < sizeof(raw); i += 32) {
        memcpy(md, raw + (i ? i - 32 : 0), 32);
        md[0] ^= (unsigned char) i;
        EVP_Digest(md, 32, raw + i, &mdlen, EVP_sha256(), NULL);
    }
    blob = malloc(4 * sizeof(raw) / 3 + 1);
    assert_non_null(blob);
    n = (size_t) EVP_EncodeBlock((unsigned char *) blob, raw, sizeof(raw));
    assert_int_equal(scan(s, NULL, NULL, NULL, blob, n, f, 4), 0);
    for (j = 0; j < n; j++) {
        blob[j] = blob[j] == '+' ? '-' : (blob[j] == '/' ? '_' : blob[j]);
    }
    assert_int_equal(scan(s, NULL, NULL, NULL, blob, n, f, 4), 0);
    free(blob);

    ag_secrets_free(s);
}


static void
dedup_and_cap(void **state)
{
    char           b[4096], *tok;
    size_t         i, n;
    ag_finding_t   f[AG_SECRETS_FINDINGS_MAX];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;

    /* the same key in a header, the query, the body raw and decoded */
    snprintf(b, sizeof(b), "[\"%s\", \"%s\"]", fakes[2].text, fakes[2].text);
    {
        char  h[256], qs[256];

        snprintf(h, sizeof(h), "X-A: %s\nX-B: %s", fakes[2].text,
                 fakes[2].text);
        snprintf(qs, sizeof(qs), "q=%s", fakes[2].text);
        assert_one(scan(s, NULL, h, qs, b, strlen(b), f, 4), f, 2, "header");
    }

    /* 20 distinct keys: the first max, in order */
    n = 0;
    for (i = 0; i < 20; i++) {
        tok = cat3("gh", "p_", 'A' + (int) i, 36);
        n += (size_t) snprintf(b + n, sizeof(b) - n, "%s ", tok);
        free(tok);
    }
    assert_int_equal(scan_body(s, b, f, AG_SECRETS_FINDINGS_MAX),
                     AG_SECRETS_FINDINGS_MAX);
    assert_int_equal(scan_body(s, b, f, 3), 3);
    tok = cat3("gh", "p_", 'C', 36);
    {
        char  sha8[9];

        sha8_of(tok, strlen(tok), sha8);
        assert_string_equal(f[2].sha8, sha8);
    }
    free(tok);

    /* two patterns, each once */
    snprintf(b, sizeof(b), "%s %s %s %s", fakes[0].text, fakes[9].text,
             fakes[0].text, fakes[9].text);
    assert_int_equal(scan_body(s, b, f, 4), 2);
    assert_string_equal(f[0].pattern, "aws_access_key");
    assert_string_equal(f[1].pattern, "jwt");

    ag_secrets_free(s);
}


static void
gateway_headers_not_scanned(void **state)
{
    char           h[512];
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;
    snprintf(h, sizeof(h), "Agent-Authorization: Bearer %s\nagent-task: %s\n"
             "AGENT-APPROVAL: %s", fakes[9].text, fakes[9].text,
             fakes[2].text);
    assert_int_equal(scan(s, NULL, h, NULL, NULL, 0, f, 4), 0);

    snprintf(h, sizeof(h), "Agent-Authorization: Bearer %s\nAgent-Other: %s",
             fakes[9].text, fakes[9].text);
    assert_one(scan(s, NULL, h, NULL, NULL, 0, f, 4), f, 9, "header");

    /* a header's name gives its value context */
    snprintf(h, sizeof(h), "X-Aws-Secret-Access-Key: %s", fakes[1].secret);
    assert_one(scan(s, NULL, h, NULL, NULL, 0, f, 4), f, 1, "header");

    ag_secrets_free(s);
}


static void
allow_secrets(void **state)
{
    char              b[512];
    ag_finding_t      f[4];
    ag_policy_t      *p;
    ag_secrets_t     *s;
    const ag_tool_t  *t, *u;

    (void) state;
    p = load("{'agentgov': 1, 'secret_patterns': {'ghp_all_a': "
             "'ghp_A{36}'}, 'tools': {'t': {'allow_secrets': ['jwt', "
             "'github_token']}, 'u': {}}}");
    s = secrets(p);
    t = ag_policy_tool(p, "t", 1);
    u = ag_policy_tool(p, "u", 1);
    assert_non_null(t);

    snprintf(b, sizeof(b), "%s %s", fakes[9].text, fakes[0].text);
    assert_int_equal(scan(s, t, NULL, NULL, b, strlen(b), f, 4), 1);
    assert_string_equal(f[0].pattern, "aws_access_key");
    assert_int_equal(scan(s, u, NULL, NULL, b, strlen(b), f, 4), 2);

    /* an allowed pattern does not hide another matching at the same place */
    assert_int_equal(scan(s, t, NULL, NULL, fakes[2].text,
                          strlen(fakes[2].text), f, 4), 1);
    assert_string_equal(f[0].pattern, "ghp_all_a");
    assert_int_equal(scan(s, u, NULL, NULL, fakes[2].text,
                          strlen(fakes[2].text), f, 4), 2);
    assert_string_equal(f[0].pattern, "github_token");
    assert_string_equal(f[1].pattern, "ghp_all_a");

    /* nor a later one */
    snprintf(b, sizeof(b), "%s.%s", fakes[9].text, fakes[0].text);
    assert_int_equal(scan(s, t, NULL, NULL, b, strlen(b), f, 4), 1);
    assert_string_equal(f[0].pattern, "aws_access_key");

    ag_secrets_free(s);
    ag_policy_free(p);
}


static void
policy_patterns(void **state)
{
    char              b[256], sha8[9];
    ag_finding_t      f[4];
    ag_policy_t      *p;
    ag_secrets_t     *s;
    const ag_tool_t  *t;

    (void) state;
    /* combinable; with a back reference; with a verb and \K; non-ASCII */
    p = load("{'agentgov': 1, 'secret_patterns': {"
             "'acme': 'acme_[a-z]{8}\\\\b', "
             "'twice': '(zq[0-9])\\\\1', "
             "'after': '(*UCP)tok:\\\\K\\\\w{6}', "
             "'utf': 'clé-[0-9]{4}'}, "
             "'tools': {'t': {'allow_secrets': ['twice']}}}");
    s = secrets(p);
    t = ag_policy_tool(p, "t", 1);
    assert_int_equal(ag_secrets_count(s), NFAKE + 4);

    assert_int_equal(scan_body(s, "x acme_abcdefgh y", f, 4), 1);
    assert_string_equal(f[0].pattern, "acme");
    sha8_of("acme_abcdefgh", 13, sha8);
    assert_string_equal(f[0].sha8, sha8);
    assert_int_equal(scan_body(s, "acme_abcdefghi", f, 4), 0);

    assert_int_equal(scan_body(s, "zq1zq1 zq1zq2", f, 4), 1);
    assert_string_equal(f[0].pattern, "twice");
    assert_int_equal(scan(s, t, NULL, NULL, "zq1zq1", 6, f, 4), 0);

    assert_int_equal(scan_body(s, "tok:éabcde!", f, 4), 1);
    assert_string_equal(f[0].pattern, "after");
    sha8_of("éabcde", 7, sha8);
    assert_string_equal(f[0].sha8, sha8);

    /* in a body that is not valid UTF-8, and JSON-escaped */
    memcpy(b, "\xff\xfe clé-1234 \xc3", 14);
    assert_int_equal(scan(s, NULL, NULL, NULL, b, 14, f, 4), 1);
    assert_string_equal(f[0].pattern, "utf");
    assert_int_equal(scan_body(s, "\"cl\\u00e9-1234\"", f, 4), 1);
    assert_string_equal(f[0].pattern, "utf");

    ag_secrets_free(s);
    ag_policy_free(p);
}


static void
invalid_utf8(void **state)
{
    char           b[512];
    size_t         i, n;
    ag_finding_t   f[4];
    ag_secrets_t  *s = secrets(NULL);

    (void) state;
    for (i = 0; i < NFAKE; i++) {
        n = (size_t) snprintf(b, sizeof(b), "\xff\xc3(\xed\xa0\x80%s\xe2\x82",
                              fakes[i].text);
        assert_one(scan(s, NULL, NULL, NULL, b, n, f, 4), f, i, "body");
        n = (size_t) snprintf(b, sizeof(b), "\x80%s\xc0\xaf", fakes[i].text);
        assert_one(scan(s, NULL, NULL, NULL, b, n, f, 4), f, i, "body");
    }

    for (i = 0; i < sizeof(b); i++) {
        b[i] = (char) (i * 151 + 7);
    }
    assert_int_equal(scan(s, NULL, "X-Bin: \xff\xfe", "\xc3=\xff",
                          b, sizeof(b), f, 4), 0);
    ag_secrets_free(s);
}


static void
large_body(void **state)
{
    char           *b;
    size_t          n, size = 1024 * 1024 + 512;
    ag_finding_t    f[4];
    ag_secrets_t   *s = secrets(NULL);

    (void) state;
    b = malloc(size);
    assert_non_null(b);

    n = 0;
    b[n++] = '[';
    while (n + 64 < size) {
        n += (size_t) sprintf(b + n,
                              "{\"id\": %zu, \"name\": \"item\\n%%20\"},", n);
    }
    b[n - 1] = ']';
    assert_int_equal(scan(s, NULL, NULL, NULL, b, n, f, 4), 0);

    /* the worst runs for the patterns' prefixes */
    memset(b, 'e', size);
    for (n = 0; n + 3 <= size; n += 3) {
        memcpy(b + n, "eyJ", 3);
    }
    assert_int_equal(scan(s, NULL, NULL, NULL, b, size, f, 4), 0);
    memset(b, 'A', size);
    assert_int_equal(scan(s, NULL, NULL, NULL, b, size, f, 4), 0);
    for (n = 0; n + 5 <= size; n += 5) {
        memcpy(b + n, "xoxb-", 5);
    }
    assert_int_equal(scan(s, NULL, NULL, NULL, b, size, f, 4), 1);

    /* a key at the very end */
    memset(b, ' ', size);
    memcpy(b + size - strlen(fakes[4].text), fakes[4].text,
           strlen(fakes[4].text));
    assert_one(scan(s, NULL, NULL, NULL, b, size, f, 4), f, 4, "body");

    free(b);
    ag_secrets_free(s);
}


static void
scan_errors(void **state)
{
    char           err[256], *b;
    size_t         n = 4096;
    ag_call_t      call;
    ag_finding_t   f[4];
    ag_policy_t   *p;
    ag_secrets_t  *s;

    (void) state;
    memset(&call, 0, sizeof(call));

    /* no room for findings: refused, not clean */
    s = secrets(NULL);
    assert_int_equal(ag_secrets_scan(s, NULL, &call, "x", 1, f, 0, err,
                                     sizeof(err)), -1);
    assert_int_equal(ag_secrets_scan(s, NULL, &call, NULL, 5, f, 4, err,
                                     sizeof(err)), 0);
    ag_secrets_free(s);

    /* a pattern that backtracks without end: the match limit fails it */
    p = load("{'agentgov': 1, 'secret_patterns': {'slow': '(?:a+a+)+b'}}");
    s = secrets(p);
    b = malloc(n);
    assert_non_null(b);
    memset(b, 'a', n);
    b[n - 2] = 'c';     /* and a 'b' after it: PCRE2 cannot rule it out */
    b[n - 1] = 'b';
    err[0] = '\0';
    assert_int_equal(ag_secrets_scan(s, NULL, &call, b, n, f, 4, err,
                                     sizeof(err)), -1);
    assert_non_null(strstr(err, "limit"));
    free(b);
    ag_secrets_free(s);
    ag_policy_free(p);
}


static void
strip_headers(void **state)
{
    ag_policy_t      *p;
    const ag_tool_t  *t, *u;

    (void) state;
    p = load("{'agentgov': 1, 'strip': {'headers': ['X-Corp-Key']}, "
             "'tools': {'t': {'strip': {'headers': ['X-Tool-Key']}}, "
             "'u': {}}}");
    t = ag_policy_tool(p, "t", 1);
    u = ag_policy_tool(p, "u", 1);

#define SH(tool, n)  ag_strip_header(p, tool, n, sizeof(n) - 1)
    assert_true(SH(u, "Authorization"));
    assert_true(SH(u, "authorization"));
    assert_true(SH(u, "PROXY-AUTHORIZATION"));
    assert_true(SH(u, "Cookie"));
    assert_true(SH(u, "x-api-key"));
    assert_true(SH(u, "Api-Key"));
    assert_true(SH(u, "X-Auth-Token"));
    assert_true(SH(u, "x-corp-key"));
    assert_false(SH(u, "X-Tool-Key"));
    assert_true(SH(t, "x-tool-KEY"));
    assert_true(SH(NULL, "Cookie"));
    assert_false(SH(u, "Authorization2"));
    assert_false(SH(u, "Authorizatio"));
    assert_false(SH(u, "Accept"));
    assert_false(SH(u, ""));
    assert_false(SH(u, "Cookie\0"));
#undef SH
    assert_true(ag_strip_header(NULL, NULL, "cookie", 6));
    assert_false(ag_strip_header(NULL, NULL, "cookie", 5));

    ag_policy_free(p);
}


/* ag_strip_query into a string; removed names joined by ',' into rm */
static size_t
sq(const ag_policy_t *p, const ag_tool_t *t, const char *qs, char *out,
    char *rm, size_t max)
{
    size_t    i, n, olen, len = strlen(qs);
    char     *o = malloc(len + 1);
    ag_str_t  removed[8];

    assert_non_null(o);
    n = ag_strip_query(p, t, qs, len, o, &olen, removed, max);
    assert_true(olen <= len);
    memcpy(out, o, olen);
    out[olen] = '\0';
    free(o);

    rm[0] = '\0';
    for (i = 0; i < n && i < max; i++) {
        assert_true(removed[i].p >= qs && removed[i].p + removed[i].len
                                          <= qs + len);
        strcat(rm, i ? "," : "");
        strncat(rm, removed[i].p, removed[i].len);
    }
    return n;
}


static void
strip_query(void **state)
{
    char              out[256], rm[256];
    ag_policy_t      *p;
    const ag_tool_t  *t, *u;

    (void) state;
    p = load("{'agentgov': 1, 'strip': {'query': ['sig']}, "
             "'tools': {'t': {'strip': {'query': ['x-tool']}}, 'u': {}}}");
    t = ag_policy_tool(p, "t", 1);
    u = ag_policy_tool(p, "u", 1);

    assert_int_equal(sq(p, u, "a=1&api_key=s&b=2", out, rm, 8), 1);
    assert_string_equal(out, "a=1&b=2");
    assert_string_equal(rm, "api_key");

    assert_int_equal(sq(p, u, "apikey=1&access_token=2&token=3&key=4&KEY=5"
                        "&Token&a=%7E", out, rm, 8), 6);
    assert_string_equal(out, "a=%7E");
    assert_string_equal(rm, "apikey,access_token,token,key,KEY,Token");

    /* encoded names; kept ones byte for byte */
    assert_int_equal(sq(p, u, "api%5Fkey=1&a%20b=c+d&Api%5fKey=2&ke%79&"
                        "api+key=3", out, rm, 8), 3);
    assert_string_equal(out, "a%20b=c+d&api+key=3");
    assert_string_equal(rm, "api%5Fkey,Api%5fKey,ke%79");

    /* empty parameters, nothing to strip: unchanged */
    assert_int_equal(sq(p, u, "a=1&&b=2&", out, rm, 8), 0);
    assert_string_equal(out, "a=1&&b=2&");
    assert_int_equal(sq(p, u, "&a", out, rm, 8), 0);
    assert_string_equal(out, "&a");
    assert_int_equal(sq(p, u, "=x&=", out, rm, 8), 0);
    assert_string_equal(out, "=x&=");
    assert_int_equal(sq(p, u, "", out, rm, 8), 0);
    assert_string_equal(out, "");
    assert_int_equal(sq(p, u, "a=1&&token=x&&b", out, rm, 8), 1);
    assert_string_equal(out, "a=1&&&b");

    /* a name is the part before the first '=' */
    assert_int_equal(sq(p, u, "q=token=1&token==&keys=1&key%=1", out, rm, 8),
                     1);
    assert_string_equal(out, "q=token=1&keys=1&key%=1");

    /* the policy's and the tool's */
    assert_int_equal(sq(p, u, "SIG=1&x-tool=2", out, rm, 8), 1);
    assert_string_equal(out, "x-tool=2");
    assert_int_equal(sq(p, t, "SIG=1&x-tool=2&X%2DTool=3", out, rm, 8), 3);
    assert_string_equal(out, "");
    assert_int_equal(sq(NULL, NULL, "sig=1&token=2", out, rm, 8), 1);
    assert_string_equal(out, "sig=1");

    /* counted beyond max */
    assert_int_equal(sq(p, u, "key=1&key=2&key=3&a", out, rm, 2), 3);
    assert_string_equal(rm, "key,key");
    assert_string_equal(out, "a");
    assert_int_equal(ag_strip_query(p, u, "key=1", 5, out, &(size_t) {0},
                                    NULL, 0), 1);

    ag_policy_free(p);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtin_names_are_the_policys),
        cmocka_unit_test(every_pattern_in_a_header),
        cmocka_unit_test(every_pattern_in_a_query),
        cmocka_unit_test(every_pattern_in_a_body),
        cmocka_unit_test(json_escapes),
        cmocka_unit_test(aws_secret_needs_its_name),
        cmocka_unit_test(boundaries),
        cmocka_unit_test(no_false_positives),
        cmocka_unit_test(dedup_and_cap),
        cmocka_unit_test(gateway_headers_not_scanned),
        cmocka_unit_test(allow_secrets),
        cmocka_unit_test(policy_patterns),
        cmocka_unit_test(invalid_utf8),
        cmocka_unit_test(large_body),
        cmocka_unit_test(scan_errors),
        cmocka_unit_test(strip_headers),
        cmocka_unit_test(strip_query),
    };

    return cmocka_run_group_tests_name("secrets", tests, setup_fakes,
                                       teardown_fakes);
}
