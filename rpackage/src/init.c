/* The package's native routines, registered by name (R CMD check wants no dynamic lookup). */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>
#include "hfbridge.h"

static const R_CallMethodDef call_methods[] = {
  {"hfb_alloc_unfilled", (DL_FUNC) &hfb_alloc_unfilled, 2},
  {"hfb_release_spare", (DL_FUNC) &hfb_release_spare, 0},
  {"hfb_mapped_min", (DL_FUNC) &hfb_mapped_min, 0},
  {"hfb_split_rows", (DL_FUNC) &hfb_split_rows, 4},
  {"hfb_arrow_vector", (DL_FUNC) &hfb_arrow_vector, 7},
  {"hfb_arrow_list", (DL_FUNC) &hfb_arrow_list, 3},
  {"hfb_buffer_view", (DL_FUNC) &hfb_buffer_view, 4},
  {NULL, NULL, 0}
};

void R_init_hfbridge(DllInfo *dll) {
  hfb_init_altrep();
  hfb_init_alloc(dll);
  hfb_init_lazy_strings(dll);
  hfb_init_views(dll);
  R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
  R_useDynamicSymbols(dll, FALSE);
  R_forceSymbols(dll, TRUE);
}
