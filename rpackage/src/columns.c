/* Arrow arrays to R vectors, read straight from arrow's buffers (hub_dataset()).
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
#include "columns.h"

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

int arrow_bit(const uint8_t *bits, R_xlen_t i) {
  return (bits[i >> 3] >> (i & 7)) & 1;
}

static int valid(const arrow_array *a, R_xlen_t i) {
  return a->validity == NULL || arrow_bit(a->validity, a->offset + i);
}

static void need_values(const arrow_array *a) {
  if (a->values == NULL && a->length > 0) error("hfb_arrow_vector(): no values buffer");
}

static SEXP int32_vector(const arrow_array *a) {
  need_values(a);
  SEXP out = allocVector(INTSXP, a->length);
  const int32_t *v = (const int32_t *) a->values + a->offset;
  int *to = INTEGER(out);
  if (a->validity == NULL) {
    if (a->length) memcpy(to, v, a->length * sizeof(int));
  } else {
    for (R_xlen_t i = 0; i < a->length; i++) to[i] = valid(a, i) ? v[i] : NA_INTEGER;
  }
  return out;
}

static SEXP float64_vector(const arrow_array *a) {
  need_values(a);
  SEXP out = allocVector(REALSXP, a->length);
  const double *v = (const double *) a->values + a->offset;
  double *to = REAL(out);
  if (a->validity == NULL) {
    if (a->length) memcpy(to, v, a->length * sizeof(double));
  } else {
    for (R_xlen_t i = 0; i < a->length; i++) to[i] = valid(a, i) ? v[i] : NA_REAL;
  }
  return out;
}

static SEXP bool_vector(const arrow_array *a) {
  need_values(a);
  SEXP out = allocVector(LGLSXP, a->length);
  int *to = LOGICAL(out);
  for (R_xlen_t i = 0; i < a->length; i++)
    to[i] = valid(a, i) ? arrow_bit(a->values, a->offset + i) : NA_LOGICAL;
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
  if (!valid(a, i)) return NA_STRING;
  int64_t start, end;
  arrow_string_bounds(a, wide, i, &start, &end);
  if (end < start) error("hfb_arrow_vector(): string offsets decrease");
  if (end > start && a->data == NULL) error("hfb_arrow_vector(): no string data buffer");
  return r_string(a->data + start, end - start);
}

static SEXP string_vector(const arrow_array *a, int wide) {
  need_values(a);
  SEXP out = PROTECT(allocVector(STRSXP, a->length));
  for (R_xlen_t i = 0; i < a->length; i++) SET_STRING_ELT(out, i, arrow_string(a, wide, i));
  UNPROTECT(1);
  return out;
}

static SEXP typed_vector(const char *name, const arrow_array *a) {
  if (!strcmp(name, "int32")) return int32_vector(a);
  if (!strcmp(name, "float64")) return float64_vector(a);
  if (!strcmp(name, "bool")) return bool_vector(a);
  if (!strcmp(name, "utf8")) return string_vector(a, 0);
  if (!strcmp(name, "large_utf8")) return string_vector(a, 1);
  error("hfb_arrow_vector(): unknown type '%s'", name);
  return R_NilValue;
}

static const char *type_name(SEXP type) {
  if (!isString(type) || XLENGTH(type) != 1) error("hfb_arrow_vector(): `type` must be a string");
  return CHAR(STRING_ELT(type, 0));
}

/* An R list of the six arguments of hfb_arrow_vector(), in their order. */
static arrow_array listed_array(SEXP b, const char **name) {
  if (TYPEOF(b) != VECSXP || XLENGTH(b) != 6) error("hfb_arrow_list(): buffers must be a list of 6");
  *name = type_name(VECTOR_ELT(b, 0));
  arrow_array a = {count(VECTOR_ELT(b, 1), "length"), count(VECTOR_ELT(b, 2), "offset"),
                   address(VECTOR_ELT(b, 3), "validity"), address(VECTOR_ELT(b, 4), "values"),
                   address(VECTOR_ELT(b, 5), "data")};
  return a;
}

/* A list column straight from arrow's buffers: row i is child values [offsets[i], offsets[i +
 * 1]) as a vector, or NULL where bit i of `na` (a bool array, or NULL) is set. One pass, with no
 * flat R copy of the child values and offsets to cut up (which, 14 MB for 1M rows, would also
 * bring R's next garbage collection nearer). */
SEXP hfb_arrow_list(SEXP offsets, SEXP child, SEXP na) {
  const char *offsets_type, *child_type, *na_type = "bool";
  arrow_array o = listed_array(offsets, &offsets_type), c = listed_array(child, &child_type);
  arrow_array nulls = {0, 0, NULL, NULL, NULL};
  if (!isNull(na)) nulls = listed_array(na, &na_type);
  if (strcmp(offsets_type, "int32") || strcmp(na_type, "bool") || o.length < 1 ||
      o.validity != NULL)
    error("hfb_arrow_list(): offsets must be int32 without nulls, na a bool array");
  need_values(&o);
  R_xlen_t n = o.length - 1;
  if (!isNull(na) && (nulls.length != n || nulls.validity != NULL))
    error("hfb_arrow_list(): `na` must have one value per row");
  const int32_t *at = (const int32_t *) o.values + o.offset;
  if (at[0] != 0) error("hfb_arrow_list(): the first offset must be 0");
  for (R_xlen_t i = 0; i < n; i++)
    if (at[i + 1] < at[i] || at[i + 1] > c.length) error("hfb_arrow_list(): bad offsets");
  SEXP out = PROTECT(allocVector(VECSXP, n));
  for (R_xlen_t i = 0; i < n; i++) {
    if (nulls.values != NULL && arrow_bit(nulls.values, nulls.offset + i)) continue;
    arrow_array row = c;
    row.offset = c.offset + at[i];
    row.length = at[i + 1] - at[i];
    SET_VECTOR_ELT(out, i, typed_vector(child_type, &row));
  }
  UNPROTECT(1);
  return out;
}

/* type: "int32", "float64", "bool", "utf8" or "large_utf8"; length and offset in elements;
 * validity, values and data: addresses as doubles, 0 for none (see pybridge.columns.buffers).
 * Nulls become NA. A string array with a `keeper` (the object that keeps it alive) is read
 * lazily (lazy_strings.c); without one it is copied now. */
SEXP hfb_arrow_vector(SEXP type, SEXP length, SEXP offset, SEXP validity, SEXP values,
                      SEXP data, SEXP keeper) {
  const char *name = type_name(type);
  arrow_array a = {count(length, "length"), count(offset, "offset"), address(validity, "validity"),
                   address(values, "values"), address(data, "data")};
  int wide = !strcmp(name, "large_utf8");
  if (!isNull(keeper) && (wide || !strcmp(name, "utf8"))) {
    need_values(&a);
    return lazy_strings(&a, wide, keeper);
  }
  return typed_vector(name, &a);
}
