/* What the package's ALTREP classes share (src/alloc.c, src/views.c, src/lazy_strings.c), after
 * the arrow R package's AltrepVectorBase: registering a class, the vector's length, and the
 * external pointer that holds the vector's own state and keeps its keeper alive.
 *
 * data1 of every such vector is that external pointer: its address the class's state (a block
 * of memory, a buffer, an arrow array), its tag the length (a double), its protected value the
 * keeper (the Python object that owns the memory read, or NULL). data2 is the class's own. */
#ifndef HFB_ALTREP_BASE_H
#define HFB_ALTREP_BASE_H
#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include <R_ext/Rdynload.h>

/* The methods every class has, with its own behaviour; the length method is shared. */
typedef struct {
  R_altrep_Inspect_method_t inspect;
  R_altvec_Dataptr_method_t dataptr;
  R_altvec_Dataptr_or_null_method_t dataptr_or_null;
} hfb_altrep_methods;

R_altrep_class_t hfb_altrep_class(const char *name, SEXPTYPE type, DllInfo *dll,
                                  const hfb_altrep_methods *methods);
SEXP hfb_altrep_new(R_altrep_class_t cls, void *state, R_xlen_t length, SEXP keeper,
                    R_CFinalizer_t finalize);
void *hfb_altrep_state(SEXP x);
R_xlen_t hfb_altrep_length(SEXP x);

#endif
