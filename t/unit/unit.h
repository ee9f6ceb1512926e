/* Common includes for the cmocka unit suites (one binary per t/unit/test_*.c). */

#ifndef AG_UNIT_H
#define AG_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#endif
