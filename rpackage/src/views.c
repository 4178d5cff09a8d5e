/* An integer or double vector that reads a buffer of Python's in place (the flat columns of
 * $encode_batch(), before src/split_rows.c cuts them into encodings).
 *
 * Converted by reticulate, each column would be copied into R's heap only to be copied again,
 * row by row: for 20k encodings that is 20 MB of garbage per call, which brings R's next full
 * collection (0.15 s once reticulate has loaded Matrix) nearer. The view keeps the Python
 * object that owns the buffer (its keeper) alive, and is read through DATAPTR_RO; a request
 * for a writable pointer gets a copy in R's heap first, so the buffer is never written.
 *
 * data1: an external pointer to the buffer, its tag the length (a double), protecting the
 * keeper. data2: the copy, once one was asked for. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Altrep.h>

static R_altrep_class_t int_view_class, real_view_class;

static size_t width(SEXP x) {
  return TYPEOF(x) == REALSXP ? sizeof(double) : sizeof(int);
}

static R_xlen_t view_length(SEXP x) {
  return (R_xlen_t) REAL(R_ExternalPtrTag(R_altrep_data1(x)))[0];
}

static void *view_copy(SEXP x) {
  SEXP copy = R_altrep_data2(x);
  if (copy == R_NilValue) {
    R_xlen_t n = view_length(x);
    copy = allocVector(TYPEOF(x), n);
    if (n) memcpy(DATAPTR(copy), R_ExternalPtrAddr(R_altrep_data1(x)), n * width(x));
    R_set_altrep_data2(x, copy);
  }
  return DATAPTR(copy);
}

static void *view_dataptr(SEXP x, Rboolean writeable) {
  if (writeable || R_altrep_data2(x) != R_NilValue) return view_copy(x);
  return R_ExternalPtrAddr(R_altrep_data1(x));
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
  SEXP tag = PROTECT(ScalarReal(n));
  SEXP ptr = PROTECT(R_MakeExternalPtr((void *) (uintptr_t) a, tag, keeper));
  SEXP x = R_new_altrep(cls, ptr, R_NilValue);
  UNPROTECT(2);
  return x;
}

static void set_methods(R_altrep_class_t cls) {
  R_set_altrep_Length_method(cls, view_length);
  R_set_altrep_Inspect_method(cls, view_inspect);
  R_set_altvec_Dataptr_method(cls, view_dataptr);
  R_set_altvec_Dataptr_or_null_method(cls, view_dataptr_or_null);
}

/* Called once by R_init_hfbridge (init.c). */
void hfb_init_views(DllInfo *dll) {
  int_view_class = R_make_altinteger_class("hfbridge_view_integer", "hfbridge", dll);
  real_view_class = R_make_altreal_class("hfbridge_view_double", "hfbridge", dll);
  set_methods(int_view_class);
  set_methods(real_view_class);
  R_set_altinteger_Elt_method(int_view_class, view_int_elt);
  R_set_altreal_Elt_method(real_view_class, view_real_elt);
}
