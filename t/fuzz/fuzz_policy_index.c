/*
 * The path index of a large (tool, method) cell (ag_policy.c, "the path
 * index of a large cell"): a policy is built from the input's path patterns,
 * padded past AG_PX_MIN rules in one cell, and the input's paths are decided
 * with the index and without it (and with a trace): the decisions must be
 * the same. The index is where a wrong prefix would silently allow a call
 * that a deny or hold rule should have caught.
 *
 * Input: lines.
 *   @PATH      a path to decide (raw bytes: need not be UTF-8)
 *   rREGEX     a rule with {"regex": REGEX}
 *   lA B       a rule with the globs A and B (split on the first space)
 *   n          a rule with no path
 *   wGLOB      a rule with GLOB and a "when" on header X-W
 *   GLOB       a rule with GLOB ('/' is prepended unless it starts with '/'
 *              or '*'); a leading 'g' is dropped
 * A rule's effect and mode follow its line number. Paths near every rule
 * pattern are decided too (ag_fuzz_path_inst).
 */

#include "fuzz.h"
#include "ag_call.h"
#include "ag_json.h"
#include "ag_match.h"
#include "ag_policy.h"


#define AG_FUZZ_MIN_RULES  36          /* past AG_PX_MIN (32) */
#define AG_FUZZ_MAX_RULES  200
#define AG_FUZZ_MAX_PATHS  96


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    return 0;
}


typedef struct {
    const char  *p;
    size_t       len;
    int          owned;
} ag_fuzz_path_t;


typedef struct {
    ag_fuzz_path_t  v[AG_FUZZ_MAX_PATHS];
    size_t          n;
} ag_fuzz_paths_t;


static void
ag_fuzz_path_add(ag_fuzz_paths_t *paths, const char *p, size_t len, int copy)
{
    if (paths->n == AG_FUZZ_MAX_PATHS) {
        return;
    }
    paths->v[paths->n].p = copy ? ag_fuzz_strndup(p, len) : p;
    paths->v[paths->n].len = len;
    paths->v[paths->n].owned = copy;
    paths->n++;
}


/* Paths near a pattern: each '*' as 'x', its first half, the stars
   dropped (a '**' matching zero segments), and each run of stars as
   "x/y" (a '**' matching several). */
static void
ag_fuzz_path_inst(ag_fuzz_paths_t *paths, const char *pat, size_t len)
{
    char    *s;
    size_t   i, o;

    s = calloc(3 * len + 1, 1);
    if (s == NULL) {
        ag_fuzz_fail("out of memory");
    }

    for (i = 0; i < len; i++) {
        s[i] = (pat[i] == '*') ? 'x' : pat[i];
    }
    ag_fuzz_path_add(paths, s, len, 1);
    ag_fuzz_path_add(paths, s, len / 2, 1);

    for (i = 0, o = 0; i < len; i++) {
        if (pat[i] != '*') {
            s[o++] = pat[i];
        }
    }
    ag_fuzz_path_add(paths, s, o, 1);

    for (i = 0, o = 0; i < len; i++) {
        if (pat[i] != '*') {
            s[o++] = pat[i];
        } else if (i == 0 || pat[i - 1] != '*') {
            memcpy(s + o, "x/y", 3);
            o += 3;
        }
    }
    ag_fuzz_path_add(paths, s, o, 1);

    free(s);
}


/* A rule numbered i of the cell (tickets, GET); NULL if a pattern is not
   valid UTF-8 (jansson refuses it). */
static json_t *
ag_fuzz_rule(size_t i, json_t *path, int when)
{
    char     id[32];
    json_t  *r;

    snprintf(id, sizeof(id), "r%zu", i);
    r = json_pack("{s:s,s:s,s:s,s:s}", "id", id,
                  "effect", i % 3 == 0 ? "allow" : i % 3 == 1 ? "deny" : "hold",
                  "tool", "t", "method", "GET");
    if (r == NULL) {
        ag_fuzz_fail("out of memory");
    }
    if (i % 3 == 2) {
        json_object_set_new(r, "approvers", json_pack("[s]", "g"));
    }
    if (i % 7 == 6) {
        json_object_set_new(r, "mode", json_string("monitor"));
    }
    if (when) {
        json_object_set_new(r, "when",
                            json_pack("{s:{s:s}}", "header:X-W", "eq", "on"));
    }
    if (path != NULL) {
        json_object_set_new(r, "path", path);
    }
    return r;
}


static json_t *
ag_fuzz_glob_json(const char *p, size_t len)
{
    char    *s;
    json_t  *v;

    if (len > 0 && (p[0] == '/' || p[0] == '*')) {
        return json_stringn(p, len);
    }
    s = malloc(len + 2);
    if (s == NULL) {
        ag_fuzz_fail("out of memory");
    }
    s[0] = '/';
    memcpy(s + 1, p, len);
    v = json_stringn(s, len + 1);
    free(s);
    return v;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              when;
    char             err[512], pad[64], *text;
    size_t           i, n, len, alen, blen, nrules;
    json_t          *doc, *rules, *path, *a, *b;
    const char      *line, *rest, *end, *p;
    ag_call_t        call;
    ag_header_t      hdr;
    ag_policy_t     *pol;
    ag_fuzz_paths_t  paths;

    doc = json_pack("{s:i,s:{s:[{s:{s:s}}]},s:{s:{}},s:[],s:s}",
                    "agentgov", 1, "groups", "g", "jwt", "sub", "x",
                    "tools", "t", "rules", "default", "deny");
    if (doc == NULL) {
        ag_fuzz_fail("out of memory");
    }
    rules = json_object_get(doc, "rules");
    paths.n = 0;
    nrules = 0;

    for (line = (const char *) data, end = line + size; line < end;
         line = rest)
    {
        p = memchr(line, '\n', (size_t) (end - line));
        len = p ? (size_t) (p - line) : (size_t) (end - line);
        rest = line + len + 1;

        if (len == 0 || nrules == AG_FUZZ_MAX_RULES) {
            continue;
        }
        when = (line[0] == 'w');

        switch (line[0]) {
        case '@':
            ag_fuzz_path_add(&paths, line + 1, len - 1, 0);
            continue;
        case 'r':
            path = json_stringn(line + 1, len - 1);
            if (path == NULL
                || ag_regex_check(line + 1, len - 1, err, sizeof(err)) != 0)
            {
                json_decref(path);
                continue;
            }
            path = json_pack("{s:o}", "regex", path);
            ag_fuzz_path_inst(&paths, line + 1, len - 1);
            break;
        case 'l':
            ag_fuzz_split(line + 1, len - 1, ' ', &alen, &p, &blen);
            a = ag_fuzz_glob_json(line + 1, alen);
            b = ag_fuzz_glob_json(p, blen);
            path = (a && b) ? json_pack("[o,o]", a, b) : NULL;
            if (path == NULL) {
                json_decref(a);
                json_decref(b);
                continue;
            }
            ag_fuzz_path_inst(&paths, line + 1, alen);
            ag_fuzz_path_inst(&paths, p, blen);
            break;
        case 'n':
            path = NULL;
            break;
        case 'g':
        case 'w':
            line++;
            len--;
            /* fall through */
        default:
            path = ag_fuzz_glob_json(line, len);
            if (path == NULL) {
                continue;
            }
            ag_fuzz_path_inst(&paths, line, len);
            break;
        }

        json_array_append_new(rules, ag_fuzz_rule(nrules++, path, when));
    }

    /* pad the cell past AG_PX_MIN: literal heads that share prefixes with
       the usual paths, and some without a head */
    for (i = 0; nrules < AG_FUZZ_MIN_RULES; i++) {
        switch (i % 4) {
        case 0:
            snprintf(pad, sizeof(pad), "/v1/pad%zu/**", i);
            path = json_string(pad);
            break;
        case 1:
            snprintf(pad, sizeof(pad), "/v%zu/*", i % 3);
            path = json_string(pad);
            break;
        case 2:
            snprintf(pad, sizeof(pad), "/v1/re%zu/[0-9]+", i);
            path = json_pack("{s:s}", "regex", pad);
            break;
        default:
            snprintf(pad, sizeof(pad), "*/pad%zu", i);
            path = json_string(pad);
            break;
        }
        json_array_append_new(rules, ag_fuzz_rule(nrules++, path, 0));
    }

    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        ag_fuzz_fail("out of memory");
    }

    pol = ag_policy_load(text, strlen(text), err, sizeof(err));
    if (pol == NULL) {
        if (ag_fuzz_debug()) {
            fprintf(stderr, "policy refused: %s\n", err);
        }
        free(text);
        goto done;
    }
    free(text);

    ag_fuzz_path_add(&paths, "/", 1, 0);
    ag_fuzz_path_add(&paths, "/v1/pad0/x", 10, 0);
    ag_fuzz_path_add(&paths, "", 0, 0);

    memset(&call, 0, sizeof(call));
    call.tool.p = "t";
    call.tool.len = 1;
    call.method.p = "GET";
    call.method.len = 3;
    call.now = AG_FUZZ_NOW;
    hdr.name.p = "X-W";
    hdr.name.len = 3;
    hdr.value.p = "on";
    hdr.value.len = 2;

    for (n = 0; n < paths.n; n++) {
        call.path.p = paths.v[n].p;
        call.path.len = paths.v[n].len;
        call.headers = (n & 1) ? &hdr : NULL;
        call.nheaders = (n & 1);
        ag_fuzz_eval(pol, &call);
    }

    ag_policy_free(pol);

done:

    for (n = 0; n < paths.n; n++) {
        if (paths.v[n].owned) {
            free((void *) paths.v[n].p);
        }
    }
    return 0;
}
