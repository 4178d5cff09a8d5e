/* An arrow array read in place from its buffers: shared by src/columns.c and src/lazy_strings.c,
 * which depend on this file and not on each other. */
#ifndef HFB_ARROW_READ_H
#define HFB_ARROW_READ_H
#include <stdint.h>
#include <Rinternals.h>

typedef struct {
  R_xlen_t length, offset;  /* elements; offset counts from the buffers' start */
  const uint8_t *validity;  /* NULL: no nulls */
  const void *values;       /* int32 / float64 values, the bool bits, or string offsets */
  const char *data;         /* string bytes */
} arrow_array;

const char *arrow_type_name(SEXP type);
arrow_array arrow_array_at(SEXP length, SEXP offset, SEXP validity, SEXP values, SEXP data);
void arrow_need_values(const arrow_array *a);
int arrow_bit(const uint8_t *bits, R_xlen_t i);
int arrow_valid(const arrow_array *a, R_xlen_t i);
void arrow_string_bounds(const arrow_array *a, int wide, R_xlen_t i, int64_t *start,
                         int64_t *end);
SEXP arrow_string(const arrow_array *a, int wide, R_xlen_t i);
SEXP arrow_copy(const char *type, const arrow_array *a);

#endif
