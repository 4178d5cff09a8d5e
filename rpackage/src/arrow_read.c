/* Arrow arrays read straight from arrow's buffers (hub_dataset()): single values, and whole
 * arrays copied into R vectors. src/columns.c (list columns) and src/lazy_strings.c (strings
 * read on demand) both read arrays through here.
 *
 * pybridge.datasets gives, for each column, the addresses of an arrow array's buffers (validity
 * bitmap, values, string data) and keeps the array alive until R has copied it. Here each value
 * is copied once into a fresh R vector: through reticulate, a numpy int32 array costs two
 * copies, a uint8 array of string bytes a 4x widening one, and a list of str a Python object per
 * element (about 25x the time of the copy below for 1M strings). Arrow's layout is documented in
 * its columnar format specification: bit i of a bitmap is bit (i % 8) of byte i / 8, 1 = valid;
 * string i spans data[offsets[i], offsets[i + 1]). */
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include "arrow_read.h"

static const void *address(SEXP x, const char *what) {
  if (!isReal(x) || XLENGTH(x) != 1) error("hfb_arrow_vector(): `%s` must be one double", what);
  double a = REAL(x)[0];
  if (!R_FINITE(a) || a < 0 || a != (double) (uintptr_t) a)
    error("hfb_arrow_vector(): `%s` is not an address", what);
  return (const void *) (uintptr_t) a;
}

static R_xlen_t count(SEXP x, const char *what) {
  if (!isReal(x) || XLENGTH(x) != 1) error("hfb_arrow_vector(): `%s` must be one double", what);
  double n = REAL(x)[0];
  if (!R_FINITE(n) || n < 0 || n > (double) R_XLEN_T_MAX || n != floor(n))
    error("hfb_arrow_vector(): `%s` must be a count", what);
  return (R_xlen_t) n;
}

const char *arrow_type_name(SEXP type) {
  if (!isString(type) || XLENGTH(type) != 1) error("hfb_arrow_vector(): `type` must be a string");
  return CHAR(STRING_ELT(type, 0));
}

/* The array that the arguments of hfb_arrow_vector() after `type` describe: length and offset
 * in elements; validity, values and data addresses as doubles, 0 for none (see
 * pybridge.columns.buffers). */
arrow_array arrow_array_at(SEXP length, SEXP offset, SEXP validity, SEXP values, SEXP data) {
  arrow_array a = {count(length, "length"), count(offset, "offset"), address(validity, "validity"),
                   address(values, "values"), address(data, "data")};
  return a;
}

int arrow_bit(const uint8_t *bits, R_xlen_t i) {
  return (bits[i >> 3] >> (i & 7)) & 1;
}

int arrow_valid(const arrow_array *a, R_xlen_t i) {
  return a->validity == NULL || arrow_bit(a->validity, a->offset + i);
}

void arrow_need_values(const arrow_array *a) {
  if (a->values == NULL && a->length > 0) error("hfb_arrow_vector(): no values buffer");
}

static SEXP int32_vector(const arrow_array *a) {
  arrow_need_values(a);
  SEXP out = allocVector(INTSXP, a->length);
  const int32_t *v = (const int32_t *) a->values + a->offset;
  int *to = INTEGER(out);
  if (a->validity == NULL) {
    if (a->length) memcpy(to, v, a->length * sizeof(int));
  } else {
    for (R_xlen_t i = 0; i < a->length; i++) to[i] = arrow_valid(a, i) ? v[i] : NA_INTEGER;
  }
  return out;
}

static SEXP float64_vector(const arrow_array *a) {
  arrow_need_values(a);
  SEXP out = allocVector(REALSXP, a->length);
  const double *v = (const double *) a->values + a->offset;
  double *to = REAL(out);
  if (a->validity == NULL) {
    if (a->length) memcpy(to, v, a->length * sizeof(double));
  } else {
    for (R_xlen_t i = 0; i < a->length; i++) to[i] = arrow_valid(a, i) ? v[i] : NA_REAL;
  }
  return out;
}

static SEXP bool_vector(const arrow_array *a) {
  arrow_need_values(a);
  SEXP out = allocVector(LGLSXP, a->length);
  int *to = LOGICAL(out);
  for (R_xlen_t i = 0; i < a->length; i++)
    to[i] = arrow_valid(a, i) ? arrow_bit(a->values, a->offset + i) : NA_LOGICAL;
  return out;
}

/* One string as an R string. R strings cannot hold NUL: each one is written as the two
 * characters \0, as pybridge.errors writes them in messages. */
static SEXP r_string(const char *p, int64_t len) {
  if (len > INT_MAX / 2) error("hfb_arrow_vector(): a string of %.0f bytes is too long for R",
                               (double) len);
  if (len == 0) return R_BlankString;
  if (memchr(p, 0, (size_t) len) == NULL) return mkCharLenCE(p, (int) len, CE_UTF8);
  char *buf = R_alloc((size_t) (2 * len), 1);
  int n = 0;
  for (int64_t i = 0; i < len; i++) {
    if (p[i] == 0) {
      buf[n++] = '\\';
      buf[n++] = '0';
    } else {
      buf[n++] = p[i];
    }
  }
  return mkCharLenCE(buf, n, CE_UTF8);
}

/* Where string i of a (large) utf8 array starts in its data, and where it ends. */
void arrow_string_bounds(const arrow_array *a, int wide, R_xlen_t i, int64_t *start,
                         int64_t *end) {
  const int32_t *o32 = (const int32_t *) a->values + a->offset;
  const int64_t *o64 = (const int64_t *) a->values + a->offset;
  *start = wide ? o64[i] : o32[i];
  *end = wide ? o64[i + 1] : o32[i + 1];
}

/* Element i of a (large) utf8 array: an R string, or NA. */
SEXP arrow_string(const arrow_array *a, int wide, R_xlen_t i) {
  if (!arrow_valid(a, i)) return NA_STRING;
  int64_t start, end;
  arrow_string_bounds(a, wide, i, &start, &end);
  if (end < start) error("hfb_arrow_vector(): string offsets decrease");
  if (end > start && a->data == NULL) error("hfb_arrow_vector(): no string data buffer");
  return r_string(a->data + start, end - start);
}

static SEXP string_vector(const arrow_array *a, int wide) {
  arrow_need_values(a);
  SEXP out = PROTECT(allocVector(STRSXP, a->length));
  for (R_xlen_t i = 0; i < a->length; i++) SET_STRING_ELT(out, i, arrow_string(a, wide, i));
  UNPROTECT(1);
  return out;
}

/* The whole array copied into an R vector; type: "int32", "float64", "bool", "utf8" or
 * "large_utf8". Nulls become NA. */
SEXP arrow_copy(const char *type, const arrow_array *a) {
  if (!strcmp(type, "int32")) return int32_vector(a);
  if (!strcmp(type, "float64")) return float64_vector(a);
  if (!strcmp(type, "bool")) return bool_vector(a);
  if (!strcmp(type, "utf8")) return string_vector(a, 0);
  if (!strcmp(type, "large_utf8")) return string_vector(a, 1);
  error("hfb_arrow_vector(): unknown type '%s'", type);
  return R_NilValue;
}
