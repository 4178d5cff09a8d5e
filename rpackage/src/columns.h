/* An arrow array as src/columns.c reads it, shared with src/lazy_strings.c. */
#ifndef HFB_COLUMNS_H
#define HFB_COLUMNS_H
#include <stdint.h>
#include <Rinternals.h>

typedef struct {
  R_xlen_t length, offset;  /* elements; offset counts from the buffers' start */
  const uint8_t *validity;  /* NULL: no nulls */
  const void *values;       /* int32 / float64 values, the bool bits, or string offsets */
  const char *data;         /* string bytes */
} arrow_array;

int arrow_bit(const uint8_t *bits, R_xlen_t i);                      /* columns.c */
void arrow_string_bounds(const arrow_array *a, int wide, R_xlen_t i, int64_t *start,
                         int64_t *end);                              /* columns.c */
SEXP arrow_string(const arrow_array *a, int wide, R_xlen_t i);       /* columns.c */
SEXP lazy_strings(const arrow_array *a, int wide, SEXP keeper);     /* lazy_strings.c */

#endif
