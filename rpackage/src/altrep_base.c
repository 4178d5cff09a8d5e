/* The ALTREP glue that src/alloc.c, src/views.c and src/lazy_strings.c share (altrep_base.h
 * says how their vectors are laid out). Each class keeps its own data pointer, inspect line and
 * element methods; what is the same for all three lives here once. */
#define _GNU_SOURCE /* dladdr */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include <R_ext/Rdynload.h>
#include "altrep_base.h"
#include "hfbridge.h"

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define HFB_DLFCN 1
#endif

void *hfb_altrep_state(SEXP x) {
  return R_ExternalPtrAddr(R_altrep_data1(x));
}

R_xlen_t hfb_altrep_length(SEXP x) {
  return (R_xlen_t) REAL(R_ExternalPtrTag(R_altrep_data1(x)))[0];
}

static R_altrep_class_t make_class(const char *name, SEXPTYPE type, DllInfo *dll) {
  if (type == REALSXP) return R_make_altreal_class(name, "hfbridge", dll);
  if (type == INTSXP) return R_make_altinteger_class(name, "hfbridge", dll);
  return R_make_altstring_class(name, "hfbridge", dll);
}

/* A class of package hfbridge for vectors of `type` (REALSXP, INTSXP or STRSXP). */
R_altrep_class_t hfb_altrep_class(const char *name, SEXPTYPE type, DllInfo *dll,
                                  const hfb_altrep_methods *methods) {
  R_altrep_class_t cls = make_class(name, type, dll);
  R_set_altrep_Length_method(cls, hfb_altrep_length);
  R_set_altrep_Inspect_method(cls, methods->inspect);
  R_set_altvec_Dataptr_method(cls, methods->dataptr);
  R_set_altvec_Dataptr_or_null_method(cls, methods->dataptr_or_null);
  return cls;
}

/* A vector of class `cls` over `state`, keeping `keeper` alive. With a `finalize`, the pointer
 * owns the state from the moment it is made: an R error below, or the collection of the vector,
 * hands the state to `finalize`. */
SEXP hfb_altrep_new(R_altrep_class_t cls, void *state, R_xlen_t length, SEXP keeper,
                    R_CFinalizer_t finalize) {
  SEXP ptr = PROTECT(R_MakeExternalPtr(state, R_NilValue, keeper));
  if (finalize != NULL) R_RegisterCFinalizerEx(ptr, finalize, FALSE);
  R_SetExternalPtrTag(ptr, ScalarReal((double) length));
  SEXP x = R_new_altrep(cls, ptr, R_NilValue);
  UNPROTECT(1);
  return x;
}

/* The finalizers of live vectors point into this library: it must stay mapped even when R
 * unloads it (dyn.unload()), or the next collection crashes R. (R itself turns the methods of
 * such vectors into errors.) Called once by R_init_hfbridge (init.c). */
void hfb_init_altrep(void) {
#ifdef HFB_DLFCN
  Dl_info self;
  if (dladdr((void *) &hfb_init_altrep, &self) && self.dli_fname != NULL)
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
#endif
}
