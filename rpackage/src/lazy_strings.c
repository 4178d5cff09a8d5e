/* A string column of hub_dataset() as a character vector read lazily from arrow's buffers.
 *
 * Making a million R strings (mkCharLenCE: a lookup in R's global string cache and an
 * allocation each) is most of the time hub_dataset() takes, and its garbage brings a full
 * collection. pandas, the bench's anchor, keeps its strings in arrow's buffers too (pandas 3's
 * `str` dtype), as does the arrow R package. Here the vector is an ALTREP over the arrow array,
 * which a Python object kept alive by the vector holds: element i becomes an R string when it
 * is first read, and is cached; anything that asks for the data pointer (most of base R's
 * string functions) turns the whole vector into an ordinary one, after which the arrow array
 * is let go. Serialized, duplicated or modified, it behaves as an ordinary character vector.
 *
 * hfb_arrow_vector(), the entry point for one arrow array, lives here: it reads a string array
 * with a keeper lazily, and copies anything else now (src/arrow_read.c).
 *
 * data1: an external pointer to the column's `lazy_t`, protecting the Python keeper
 * (src/altrep_base.h); NULL address once materialized. data2: the cache, a character vector
 * allocated at the first read, where R_BlankString marks an element not yet made (an empty
 * string is cheap to make again). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include "altrep_base.h"
#include "arrow_read.h"
#include "hfbridge.h"

typedef struct {
  arrow_array array;
  int wide;          /* large_utf8: int64 offsets */
  R_xlen_t pending;  /* elements to make but for empty strings, counted with the cache */
} lazy_t;

static R_altrep_class_t lazy_class;

static void finalize_lazy(SEXP ptr) {
  free(R_ExternalPtrAddr(ptr));
  R_ClearExternalPtr(ptr);
}

static SEXP made_element(const lazy_t *l, R_xlen_t i) {
  return arrow_string(&l->array, l->wide, i);
}

static int empty_string(const lazy_t *l, R_xlen_t i) {
  if (!arrow_valid(&l->array, i)) return 0;
  int64_t start, end;
  arrow_string_bounds(&l->array, l->wide, i, &start, &end);
  return start == end;
}

static SEXP cache_of(SEXP x, lazy_t *l) {
  SEXP cache = R_altrep_data2(x);
  if (cache == R_NilValue) {
    cache = allocVector(STRSXP, l->array.length);  /* every element R_BlankString */
    R_set_altrep_data2(x, cache);
    l->pending = 0;
    for (R_xlen_t i = 0; i < l->array.length; i++) l->pending += !empty_string(l, i);
  }
  return cache;
}

/* Makes every element not yet made, then lets the arrow array go. */
static SEXP materialized(SEXP x) {
  lazy_t *l = hfb_altrep_state(x);
  if (l == NULL) return R_altrep_data2(x);
  SEXP cache = cache_of(x, l);
  for (R_xlen_t i = 0; i < l->array.length; i++)
    if (STRING_ELT(cache, i) == R_BlankString) SET_STRING_ELT(cache, i, made_element(l, i));
  SEXP ptr = R_altrep_data1(x);
  finalize_lazy(ptr);
  R_SetExternalPtrProtected(ptr, R_NilValue);
  return cache;
}

static SEXP lazy_elt(SEXP x, R_xlen_t i) {
  lazy_t *l = hfb_altrep_state(x);
  if (l == NULL) return STRING_ELT(R_altrep_data2(x), i);
  SEXP cache = cache_of(x, l);
  SEXP s = STRING_ELT(cache, i);
  if (s != R_BlankString) return s;
  s = PROTECT(made_element(l, i));
  SET_STRING_ELT(cache, i, s);
  if (s != R_BlankString && --l->pending == 0) materialized(x);  /* let the arrow array go */
  UNPROTECT(1);
  return s;
}

static void lazy_set_elt(SEXP x, R_xlen_t i, SEXP v) {
  SET_STRING_ELT(materialized(x), i, v);
}

static void *lazy_dataptr(SEXP x, Rboolean writeable) {
  return DATAPTR(materialized(x));
}

static const void *lazy_dataptr_or_null(SEXP x) {
  return hfb_altrep_state(x) == NULL ? DATAPTR(R_altrep_data2(x)) : NULL;
}

static int lazy_no_na(SEXP x) {
  lazy_t *l = hfb_altrep_state(x);
  return l != NULL && l->array.validity == NULL;
}

static Rboolean lazy_inspect(SEXP x, int pre, int deep, int pvec,
                             void (*inspect_subtree)(SEXP, int, int, int)) {
  Rprintf(" hfbridge arrow strings (length %.0f, %s)\n", (double) XLENGTH(x),
          hfb_altrep_state(x) == NULL ? "materialized" : "read from arrow's buffers");
  return TRUE;
}

static SEXP lazy_strings(const arrow_array *a, int wide, SEXP keeper) {
  lazy_t *l = malloc(sizeof(lazy_t));
  if (l == NULL) error("hfbridge: out of memory");
  l->array = *a;
  l->wide = wide;
  l->pending = 0;
  return hfb_altrep_new(lazy_class, l, a->length, keeper, finalize_lazy);
}

/* type: "int32", "float64", "bool", "utf8" or "large_utf8"; the others: the array's buffers, as
 * arrow_array_at() (src/arrow_read.c) reads them. Nulls become NA. A string array with a
 * `keeper` (the object that keeps it alive) is read lazily; without one it is copied now. */
SEXP hfb_arrow_vector(SEXP type, SEXP length, SEXP offset, SEXP validity, SEXP values,
                      SEXP data, SEXP keeper) {
  const char *name = arrow_type_name(type);
  arrow_array a = arrow_array_at(length, offset, validity, values, data);
  int wide = !strcmp(name, "large_utf8");
  if (!isNull(keeper) && (wide || !strcmp(name, "utf8"))) {
    arrow_need_values(&a);
    return lazy_strings(&a, wide, keeper);
  }
  return arrow_copy(name, &a);
}

/* Called once by R_init_hfbridge (init.c). */
void hfb_init_lazy_strings(DllInfo *dll) {
  static const hfb_altrep_methods methods = {lazy_inspect, lazy_dataptr, lazy_dataptr_or_null};
  lazy_class = hfb_altrep_class("hfbridge_arrow_strings", STRSXP, dll, &methods);
  R_set_altstring_Elt_method(lazy_class, lazy_elt);
  R_set_altstring_Set_elt_method(lazy_class, lazy_set_elt);
  R_set_altstring_No_NA_method(lazy_class, lazy_no_na);
}
