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
 * numbers that do not fit. Returns a new reference, or NULL with err filled.
 */
json_t *ag_json_parse(const char *data, size_t len, char *err, size_t errlen);

/* Nesting depth of a JSON text, counted without parsing it; -1 if brackets do
   not balance. Stops counting past `limit` + 1. */
int ag_json_depth(const char *data, size_t len, int limit);

#endif /* AG_JSON_H */
