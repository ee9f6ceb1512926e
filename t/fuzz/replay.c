/*
 * Replays a fuzz target over files, without libFuzzer: linked with one
 * t/fuzz/fuzz_*.c by any C compiler, so that `make test` runs every corpus
 * file as a regression test on machines without clang's fuzzer runtime (and
 * `make test-asan` runs them under AddressSanitizer and LeakSanitizer).
 *
 *   replay_json [FILE|DIR]...      default: the target's corpus (AG_FUZZ_CORPUS)
 *
 * Each file is one test, run in a child process so that a crash, an abort
 * from an oracle, a sanitizer report or a hang (AG_REPLAY_TIMEOUT seconds)
 * fails that file alone. The output is cmocka's, which t/run-all counts.
 * AG_REPLAY_NOFORK=1 runs every file in this process instead (for gdb).
 */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"


#ifndef AG_FUZZ_CORPUS
#define AG_FUZZ_CORPUS  "t/fuzz/corpus"
#endif

#define AG_REPLAY_TIMEOUT   20
#define AG_REPLAY_MAX_FILE  (4 * 1024 * 1024)


typedef struct {
    char   **v;
    size_t   n;
    size_t   cap;
} ag_replay_list_t;


static void
ag_replay_push(ag_replay_list_t *l, const char *s)
{
    char  **v;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        v = realloc(l->v, l->cap * sizeof(char *));
        if (v == NULL) {
            perror("replay");
            exit(2);
        }
        l->v = v;
    }
    l->v[l->n] = strdup(s);
    if (l->v[l->n] == NULL) {
        perror("replay");
        exit(2);
    }
    l->n++;
}


static int
ag_replay_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


/* The regular files of a directory (not recursive, no dot files), sorted;
   or the path itself when it is a file. */
static int
ag_replay_collect(ag_replay_list_t *l, const char *path)
{
    char            buf[4096];
    size_t          first;
    struct stat     st;
    DIR            *d;
    struct dirent  *e;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        ag_replay_push(l, path);
        return 0;
    }

    d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }

    first = l->n;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(buf, sizeof(buf), "%s/%s", path, e->d_name);
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
            ag_replay_push(l, buf);
        }
    }
    closedir(d);

    qsort(l->v + first, l->n - first, sizeof(char *), ag_replay_cmp);
    return 0;
}


static unsigned char *
ag_replay_read(const char *path, size_t *len)
{
    size_t          n, cap;
    FILE           *f;
    unsigned char  *buf, *exact;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    cap = AG_REPLAY_MAX_FILE;
    buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, cap, f);
    fclose(f);

    /* exactly as long as the input, so that ASan sees any over-read */
    exact = malloc(n ? n : 1);
    if (exact != NULL) {
        memcpy(exact, buf, n);
    }
    free(buf);
    *len = n;
    return exact;
}


static const char *
ag_replay_name(const char *path)
{
    const char  *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}


/* "corpus/json/x" as "json/x": the target and the file */
static const char *
ag_replay_test_name(const char *path)
{
    const char  *p, *last, *prev;

    last = NULL;
    prev = NULL;
    for (p = path; *p != '\0'; p++) {
        if (*p == '/' && p[1] != '\0' && p[1] != '/') {
            prev = last;
            last = p;
        }
    }
    return prev ? prev + 1 : path;
}


/* Run one file; 0 if it passed, else a message in why. */
static int
ag_replay_one(const char *path, int nofork, char *why, size_t whylen)
{
    int             status;
    size_t          len;
    pid_t           pid;
    unsigned char  *data;

    data = ag_replay_read(path, &len);
    if (data == NULL) {
        snprintf(why, whylen, "cannot read: %s", strerror(errno));
        return -1;
    }

    if (nofork) {
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        return 0;
    }

    fflush(stdout);
    fflush(stderr);

    pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        free(data);
        return -1;
    }

    if (pid == 0) {
        alarm(AG_REPLAY_TIMEOUT);
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        /* exit, not _exit: LeakSanitizer checks at exit */
        exit(0);
    }

    free(data);

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(why, whylen, "waitpid: %s", strerror(errno));
            return -1;
        }
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, whylen, WTERMSIG(status) == SIGALRM
                              ? "timed out after %d s" : "killed by signal %d",
                 WTERMSIG(status) == SIGALRM ? AG_REPLAY_TIMEOUT
                                             : WTERMSIG(status));
    } else {
        snprintf(why, whylen, "exit status %d", WEXITSTATUS(status));
    }
    return -1;
}


int
main(int argc, char **argv)
{
    int               i, nofork, bad;
    char              why[256];
    size_t            k, nfailed;
    const char       *env, *name;
    ag_replay_list_t  files, failed;

    memset(&files, 0, sizeof(files));
    memset(&failed, 0, sizeof(failed));

    /* every target defines it, if only to return 0 */
    LLVMFuzzerInitialize(&argc, &argv);

    bad = 0;
    if (argc < 2) {
        bad |= ag_replay_collect(&files, AG_FUZZ_CORPUS);
    }
    for (i = 1; i < argc; i++) {
        bad |= ag_replay_collect(&files, argv[i]);
    }

    env = getenv("AG_REPLAY_NOFORK");
    nofork = (env != NULL && env[0] != '\0' && strcmp(env, "0") != 0);

    printf("[==========] %s: Running %zu test(s).\n", ag_replay_name(argv[0]),
           files.n);

    nfailed = 0;
    for (k = 0; k < files.n; k++) {
        name = ag_replay_test_name(files.v[k]);
        printf("[ RUN      ] %s\n", name);
        if (ag_replay_one(files.v[k], nofork, why, sizeof(why)) == 0) {
            printf("[       OK ] %s\n", name);
        } else {
            printf("[  ERROR   ] --- %s\n[  FAILED  ] %s\n", why, name);
            ag_replay_push(&failed, files.v[k]);
            nfailed++;
        }
    }

    printf("[==========] %s: %zu test(s) run.\n", ag_replay_name(argv[0]),
           files.n);
    printf("[  PASSED  ] %zu test(s).\n", files.n - nfailed);

    if (nfailed > 0) {
        printf("[  FAILED  ] %zu test(s), listed below:\n", nfailed);
        for (k = 0; k < failed.n; k++) {
            printf("[  FAILED  ] %s\n", ag_replay_test_name(failed.v[k]));
        }
    }

    if (bad && files.n == 0) {
        /* a missing corpus is a failure, not zero tests */
        printf("[  FAILED  ] 1 test(s), listed below:\n[  FAILED  ] corpus\n");
        nfailed = 1;
    }

    for (k = 0; k < files.n; k++) {
        free(files.v[k]);
    }
    for (k = 0; k < failed.n; k++) {
        free(failed.v[k]);
    }
    free(files.v);
    free(failed.v);

    return nfailed == 0 && !bad ? 0 : 1;
}
