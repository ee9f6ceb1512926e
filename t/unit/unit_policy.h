/*
 * Helpers for unit suites that build policies from text: policies are
 * written with single quotes in C strings, q() turns them into JSON.
 */

#ifndef AG_UNIT_POLICY_H
#define AG_UNIT_POLICY_H

#include "unit.h"
#include "ag_policy.h"


static inline char *
q(const char *s)
{
    char    *d;
    size_t   i;

    d = strdup(s);
    if (d == NULL) {
        fail_msg("out of memory");
    }
    for (i = 0; d[i] != '\0'; i++) {
        if (d[i] == '\'') {
            d[i] = '"';
        }
    }
    return d;
}


static inline ag_policy_t *
load(const char *text)
{
    char          err[512];
    char         *t = q(text);
    ag_policy_t  *p;

    p = ag_policy_load(t, strlen(t), err, sizeof(err));
    free(t);
    if (p == NULL) {
        fail_msg("policy refused: %s", err);
    }
    return p;
}

#endif /* AG_UNIT_POLICY_H */
