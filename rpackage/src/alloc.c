/* R vectors that Python fills (safe_load_file): allocated but not initialised.
 *
 * numeric(n) writes n zeros that the fill overwrites at once. For large results that first
 * write is where the memory is first touched, so every page fault is paid in R's one thread
 * before Python starts. Left untouched, the pages are faulted in by Python's fill, in parallel.
 * The vector is never seen by R code before it is filled: on any error it is dropped. */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>

SEXP hfb_alloc_unfilled(SEXP type, SEXP length) {
  if (!isString(type) || XLENGTH(type) != 1 || !isReal(length) || XLENGTH(length) != 1)
    error("hfb_alloc_unfilled(type, length): a string and a double");
  double n = REAL(length)[0];
  if (!R_FINITE(n) || n < 0 || n > (double) R_XLEN_T_MAX)
    error("hfb_alloc_unfilled(): invalid length");
  const char *name = CHAR(STRING_ELT(type, 0));
  SEXPTYPE sexptype;
  if (strcmp(name, "double") == 0) sexptype = REALSXP;
  else if (strcmp(name, "integer") == 0) sexptype = INTSXP;
  else error("hfb_alloc_unfilled(): type must be \"double\" or \"integer\"");
  return allocVector(sexptype, (R_xlen_t) n);
}

SEXP hfb_split_rows(SEXP columns, SEXP splits, SEXP klass, SEXP negative_na); /* split_rows.c */

static const R_CallMethodDef call_methods[] = {
  {"hfb_alloc_unfilled", (DL_FUNC) &hfb_alloc_unfilled, 2},
  {"hfb_split_rows", (DL_FUNC) &hfb_split_rows, 4},
  {NULL, NULL, 0}
};

void R_init_hfbridge(DllInfo *dll) {
  R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
  R_useDynamicSymbols(dll, FALSE);
  R_forceSymbols(dll, TRUE);
}
