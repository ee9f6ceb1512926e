/*
 * Strict JSON for input that agents send: the gateway must read a body exactly
 * as any tool behind it would, so anything a parser may read two ways is
 * refused (ARCHITECTURE: "Parsers that read agent input reject ambiguity").
 */

#ifndef AG_JSON_H
#define AG_JSON_H

#include <stddef.h>
#include <jansson.h>

#define AG_JSON_MAX_DEPTH  64

/*
 * Parse any JSON value. Refused: malformed JSON, trailing data, duplicate keys,
 * nesting deeper than AG_JSON_MAX_DEPTH, invalid UTF-8, "\u0000" in strings,
 * numbers that do not fit. Returns a new reference, or NULL with err filled:
 * "empty JSON text", "JSON nested deeper than 64", or "malformed JSON at byte
 * N: REASON" where N is the offset of the first byte that cannot be read
 * (counted from 0; len when the text ends too early).
 *
 * It scans the bytes itself and asks jansson only to make the values (about
 * 25 instructions a byte on a 1 KiB body, json_loadb takes 190). It accepts
 * exactly what ag_json_parse_ref accepts and makes the same values, of the
 * same types, keys in the same order (the fuzz target json_diff and
 * t/unit/test_json.c hold it to that), so the two may differ only in an
 * error's reason and offset.
 */
json_t *ag_json_parse(const char *data, size_t len, char *err, size_t errlen);

/*
 * The reference implementation that ag_json_parse is checked against:
 * ag_json_depth, then jansson's json_loadb with JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY. Kept for the tests and the differential fuzzer; nothing
 * on a request path should call it.
 */
json_t *ag_json_parse_ref(const char *data, size_t len, char *err,
    size_t errlen);

/* Nesting depth of a JSON text, counted without parsing it; -1 if brackets do
   not balance. Stops counting past `limit` + 1. */
int ag_json_depth(const char *data, size_t len, int limit);

#endif /* AG_JSON_H */
