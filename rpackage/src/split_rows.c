/* Ragged rows from flat columns, in one pass (the encodings of $encode_batch()).
 *
 * Python returns every field of a batch as one flat column over all rows plus n + 1 splits.
 * Built in R, each row costs a few closure calls and as many small allocations again (0.3 to
 * 0.8 s for 20k encodings, about as long as the tokenizing); here it costs its allocations. */
#include <R.h>
#include <Rinternals.h>
#include <string.h>
#include "hfbridge.h"

#define SHARE_MAX 4096 /* rows longer than this are never shared */

static int atomic_type(SEXP x) {
  int type = TYPEOF(x);
  return type == INTSXP || type == REALSXP || type == LGLSXP || type == STRSXP;
}

/* A column is NULL, an atomic vector of `total` values, or a named list of such vectors of one
 * type (the columns of a matrix). */
static void check_column(SEXP column, R_xlen_t total) {
  if (isNull(column)) return;
  int matrix = TYPEOF(column) == VECSXP;
  R_xlen_t m = matrix ? XLENGTH(column) : 1;
  if (matrix && (m < 1 || XLENGTH(getAttrib(column, R_NamesSymbol)) != m))
    error("hfb_split_rows(): a matrix column must be a named list of vectors");
  for (R_xlen_t j = 0; j < m; j++) {
    SEXP part = matrix ? VECTOR_ELT(column, j) : column;
    if (!atomic_type(part) || (matrix && TYPEOF(part) != TYPEOF(VECTOR_ELT(column, 0))))
      error("hfb_split_rows(): columns must be integer, double, logical or character vectors");
    if (XLENGTH(part) != total)
      error("hfb_split_rows(): a column has %.0f values, the splits %.0f", (double) XLENGTH(part),
            (double) total);
  }
}

static void copy_values(SEXP to, R_xlen_t at, SEXP from, R_xlen_t start, R_xlen_t len) {
  switch (TYPEOF(from)) {
  case INTSXP: memcpy(INTEGER(to) + at, INTEGER_RO(from) + start, len * sizeof(int)); break;
  case LGLSXP: memcpy(LOGICAL(to) + at, LOGICAL_RO(from) + start, len * sizeof(int)); break;
  case REALSXP: memcpy(REAL(to) + at, REAL_RO(from) + start, len * sizeof(double)); break;
  default:
    for (R_xlen_t i = 0; i < len; i++) SET_STRING_ELT(to, at + i, STRING_ELT(from, start + i));
  }
}

/* Values [start, start + len) of an integer column with levels: the strings its 1-based codes
 * point to (NA for NA or a code out of range). */
static SEXP decoded(SEXP column, SEXP levels, R_xlen_t start, R_xlen_t len) {
  SEXP out = allocVector(STRSXP, len);
  const int *code = INTEGER_RO(column) + start;
  R_xlen_t n = XLENGTH(levels);
  for (R_xlen_t i = 0; i < len; i++)
    SET_STRING_ELT(out, i, code[i] >= 1 && code[i] <= n ? STRING_ELT(levels, code[i] - 1)
                                                          : NA_STRING);
  return out;
}

/* Values [start, start + len) of a column: a vector, or a matrix named by `dimnames`. */
static SEXP slice(SEXP column, R_xlen_t start, R_xlen_t len, SEXP dimnames, int negative_na) {
  if (TYPEOF(column) != VECSXP) {
    SEXP out = allocVector(TYPEOF(column), len);
    copy_values(out, 0, column, start, len);
    if (negative_na) {
      int *value = INTEGER(out);
      for (R_xlen_t i = 0; i < len; i++) if (value[i] < 0) value[i] = NA_INTEGER;
    }
    return out;
  }
  int m = (int) XLENGTH(column);
  SEXP out = PROTECT(allocMatrix(TYPEOF(VECTOR_ELT(column, 0)), (int) len, m));
  for (int j = 0; j < m; j++)
    copy_values(out, (R_xlen_t) j * len, VECTOR_ELT(column, j), start, len);
  setAttrib(out, R_DimNamesSymbol, dimnames);
  UNPROTECT(1);
  return out;
}

/* Whether `shared` holds values [start, start + len) of `column` (an integer, logical or double
 * vector), read as slice() reads them. */
static int same_values(SEXP shared, SEXP column, R_xlen_t start, R_xlen_t len, int negative_na) {
  if (TYPEOF(column) != INTSXP || !negative_na) {
    size_t width = TYPEOF(column) == REALSXP ? sizeof(double) : sizeof(int);
    return !memcmp(DATAPTR_RO(shared), (const char *) DATAPTR_RO(column) + start * width,
                   len * width);
  }
  const int *a = INTEGER_RO(shared), *b = INTEGER_RO(column) + start;
  for (R_xlen_t i = 0; i < len; i++)
    if (a[i] != (b[i] < 0 ? NA_INTEGER : b[i])) return 0;
  return 1;
}

static void check_splits(SEXP splits) {
  if (TYPEOF(splits) != INTSXP || XLENGTH(splits) < 1)
    error("hfb_split_rows(): at least one integer split");
  R_xlen_t n = XLENGTH(splits) - 1;
  const int *at = INTEGER_RO(splits);
  if (at[0] != 0) error("hfb_split_rows(): the first split must be 0");
  for (R_xlen_t i = 0; i < n; i++)
    if (at[i + 1] == NA_INTEGER || at[i + 1] < at[i])
      error("hfb_split_rows(): splits must increase");
}

/* An atomic vector cut into n vectors with its attributes (a list column of hub_dataset()). It
 * must have no names or dim. */
static SEXP split_vector(SEXP values, SEXP splits) {
  R_xlen_t n = XLENGTH(splits) - 1;
  const int *at = INTEGER_RO(splits);
  check_column(values, at[n]);
  SEXP out = PROTECT(allocVector(VECSXP, n));
  int classed = ATTRIB(values) != R_NilValue;  /* a factor, Date or POSIXct keeps its class */
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP piece = slice(values, at[i], at[i + 1] - at[i], R_NilValue, 0);
    SET_VECTOR_ELT(out, i, piece);
    if (classed) SHALLOW_DUPLICATE_ATTRIB(piece, values);
  }
  UNPROTECT(1);
  return out;
}

/* columns: a named list of columns (see check_column()); splits: n + 1 offsets, 0 first, each
 * >= the one before. Returns n lists named as `columns`, of class `klass`: a vector column
 * gives each row its values (an integer one with levels, the levels its 1-based codes point
 * to); a matrix column gives each row a matrix with the list's names as column names; a NULL
 * column gives each row an empty list. In the integer columns named in
 * `negative_na`, negative values become NA (pybridge's -1 for "no value").
 * When `columns` is one atomic vector, the rows are plain vectors of its values (`klass` and
 * `negative_na` are then ignored). */
SEXP hfb_split_rows(SEXP columns, SEXP splits, SEXP klass, SEXP negative_na) {
  check_splits(splits);
  if (atomic_type(columns)) return split_vector(columns, splits);
  if (TYPEOF(columns) != VECSXP)
    error("hfb_split_rows(columns, splits, klass): a list or an atomic vector of columns");
  R_xlen_t n = XLENGTH(splits) - 1, k = XLENGTH(columns);
  SEXP names = getAttrib(columns, R_NamesSymbol);
  if (XLENGTH(names) != k) error("hfb_split_rows(): the columns must be named");
  const int *at = INTEGER_RO(splits);
  for (R_xlen_t c = 0; c < k; c++) check_column(VECTOR_ELT(columns, c), at[n]);
  if (TYPEOF(negative_na) != STRSXP) error("hfb_split_rows(): negative_na must be column names");
  int *to_na = (int *) R_alloc(k, sizeof(int));
  for (R_xlen_t c = 0; c < k; c++) {
    to_na[c] = 0;
    for (R_xlen_t j = 0; j < XLENGTH(negative_na); j++)
      if (!strcmp(CHAR(STRING_ELT(names, c)), CHAR(STRING_ELT(negative_na, j)))) to_na[c] = 1;
    if (to_na[c] && TYPEOF(VECTOR_ELT(columns, c)) != INTSXP)
      error("hfb_split_rows(): negative_na names a column that is not an integer vector");
  }

  /* Shared by every row, and marked so that changing them in one row copies them first. */
  PROTECT(names);
  SEXP dimnames = PROTECT(allocVector(VECSXP, k));
  for (R_xlen_t c = 0; c < k; c++) {
    SEXP column = VECTOR_ELT(columns, c);
    if (TYPEOF(column) != VECSXP) continue;
    SEXP dn = allocVector(VECSXP, 2);
    SET_VECTOR_ELT(dimnames, c, dn);
    SET_VECTOR_ELT(dn, 1, getAttrib(column, R_NamesSymbol));
    MARK_NOT_MUTABLE(dn);
  }
  SEXP empty = PROTECT(allocVector(VECSXP, 0));
  MARK_NOT_MUTABLE(empty);
  MARK_NOT_MUTABLE(names);
  if (klass != R_NilValue) MARK_NOT_MUTABLE(klass);

  /* Rows of equal values share one vector: for single texts without padding, the attention
   * mask, type ids, special tokens mask and sequence ids of rows of one length are alike, and
   * sharing them halves the memory of a batch of encodings (and R's collections with it). Per
   * numeric column, the last vector made for each length up to SHARE_MAX is kept. */
  R_xlen_t longest = 0;
  for (R_xlen_t i = 0; i < n; i++) if (at[i + 1] - at[i] > longest) longest = at[i + 1] - at[i];
  SEXP last_made = PROTECT(allocVector(VECSXP, k));
  SEXP levels = PROTECT(allocVector(VECSXP, k));  /* of the coded columns, else NULL */
  for (R_xlen_t c = 0; c < k; c++) {
    SEXP column = VECTOR_ELT(columns, c);
    int type = TYPEOF(column);
    if (type == INTSXP && TYPEOF(getAttrib(column, R_LevelsSymbol)) == STRSXP) {
      SET_VECTOR_ELT(levels, c, getAttrib(column, R_LevelsSymbol));
      continue;
    }
    if (type == INTSXP || type == LGLSXP || type == REALSXP)
      SET_VECTOR_ELT(last_made, c, allocVector(VECSXP, (longest < SHARE_MAX ? longest : SHARE_MAX)
                                                       + 1));
  }

  SEXP out = PROTECT(allocVector(VECSXP, n));
  for (R_xlen_t i = 0; i < n; i++) {
    SEXP row = PROTECT(allocVector(VECSXP, k));
    R_xlen_t len = at[i + 1] - at[i];
    for (R_xlen_t c = 0; c < k; c++) {
      SEXP column = VECTOR_ELT(columns, c), made = VECTOR_ELT(last_made, c);
      if (isNull(column)) {
        SET_VECTOR_ELT(row, c, empty);
        continue;
      }
      if (VECTOR_ELT(levels, c) != R_NilValue) {
        SET_VECTOR_ELT(row, c, decoded(column, VECTOR_ELT(levels, c), at[i], len));
        continue;
      }
      int shareable = made != R_NilValue && len <= SHARE_MAX;
      SEXP piece = shareable ? VECTOR_ELT(made, len) : R_NilValue;
      if (piece == R_NilValue || !same_values(piece, column, at[i], len, to_na[c])) {
        piece = slice(column, at[i], len, VECTOR_ELT(dimnames, c), to_na[c]);
        if (shareable) {
          MARK_NOT_MUTABLE(piece);  /* changing it in one row copies it first */
          SET_VECTOR_ELT(made, len, piece);
        }
      }
      SET_VECTOR_ELT(row, c, piece);
    }
    setAttrib(row, R_NamesSymbol, names);
    if (klass != R_NilValue) classgets(row, klass);
    SET_VECTOR_ELT(out, i, row);
    UNPROTECT(1);
  }
  UNPROTECT(6);
  return out;
}
