/* An integer or double vector that reads a buffer of Python's in place (the flat columns of
 * $encode_batch(), before src/split_rows.c cuts them into encodings).
 *
 * Converted by reticulate, each column would be copied into R's heap only to be copied again,
 * row by row: for 20k encodings that is 20 MB of garbage per call, which brings R's next full
 * collection (0.15 s once reticulate has loaded Matrix) nearer. The view keeps the Python
 * object that owns the buffer (its keeper) alive, and is read through DATAPTR_RO; a request
 * for a writable pointer gets a copy in R's heap first, so the buffer is never written.
 *
 * data1: an external pointer to the buffer, protecting the keeper (src/altrep_base.h). data2:
 * the copy, once one was asked for. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include "altrep_base.h"
#include "hfbridge.h"

static R_altrep_class_t int_view_class, real_view_class;

static size_t width(SEXP x) {
  return TYPEOF(x) == REALSXP ? sizeof(double) : sizeof(int);
}

static void *view_copy(SEXP x) {
  SEXP copy = R_altrep_data2(x);
  if (copy == R_NilValue) {
    R_xlen_t n = hfb_altrep_length(x);
    copy = allocVector(TYPEOF(x), n);
    if (n) memcpy(DATAPTR(copy), hfb_altrep_state(x), n * width(x));
    R_set_altrep_data2(x, copy);
  }
  return DATAPTR(copy);
}

static void *view_dataptr(SEXP x, Rboolean writeable) {
  if (writeable || R_altrep_data2(x) != R_NilValue) return view_copy(x);
  return hfb_altrep_state(x);
}

static const void *view_dataptr_or_null(SEXP x) {
  return view_dataptr(x, FALSE);
}

static int view_int_elt(SEXP x, R_xlen_t i) {
  return ((const int *) view_dataptr(x, FALSE))[i];
}

static double view_real_elt(SEXP x, R_xlen_t i) {
  return ((const double *) view_dataptr(x, FALSE))[i];
}

static Rboolean view_inspect(SEXP x, int pre, int deep, int pvec,
                             void (*inspect_subtree)(SEXP, int, int, int)) {
  Rprintf(" hfbridge view of a Python buffer (%s, length %.0f)\n", type2char(TYPEOF(x)),
          (double) XLENGTH(x));
  return TRUE;
}

/* type: "int32" or "float64"; address: of the first value, as a double; length: in values;
 * keeper: the Python object that owns the buffer. */
SEXP hfb_buffer_view(SEXP type, SEXP address, SEXP length, SEXP keeper) {
  if (!isString(type) || XLENGTH(type) != 1 || !isReal(address) || XLENGTH(address) != 1 ||
      !isReal(length) || XLENGTH(length) != 1)
    error("hfb_buffer_view(type, address, length, keeper): a string and two doubles");
  double a = REAL(address)[0], n = REAL(length)[0];
  if (!R_FINITE(n) || n < 0 || n > (double) R_XLEN_T_MAX || n != floor(n))
    error("hfb_buffer_view(): invalid length");
  if (!R_FINITE(a) || a < 0 || (a == 0 && n > 0)) error("hfb_buffer_view(): invalid address");
  const char *name = CHAR(STRING_ELT(type, 0));
  R_altrep_class_t cls;
  if (!strcmp(name, "int32")) {
    cls = int_view_class;
  } else if (!strcmp(name, "float64")) {
    cls = real_view_class;
  } else {
    error("hfb_buffer_view(): type must be \"int32\" or \"float64\"");
  }
  return hfb_altrep_new(cls, (void *) (uintptr_t) a, (R_xlen_t) n, keeper, NULL);
}

/* Called once by R_init_hfbridge (init.c). */
void hfb_init_views(DllInfo *dll) {
  static const hfb_altrep_methods methods = {view_inspect, view_dataptr, view_dataptr_or_null};
  int_view_class = hfb_altrep_class("hfbridge_view_integer", INTSXP, dll, &methods);
  real_view_class = hfb_altrep_class("hfbridge_view_double", REALSXP, dll, &methods);
  R_set_altinteger_Elt_method(int_view_class, view_int_elt);
  R_set_altreal_Elt_method(real_view_class, view_real_elt);
}
