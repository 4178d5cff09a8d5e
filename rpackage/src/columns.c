/* List columns of hub_dataset() straight from arrow's buffers (hfb_arrow_list()). The arrays
 * are read and copied by src/arrow_read.c, which says why R reads arrow's buffers itself. */
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include "arrow_read.h"
#include "hfbridge.h"

/* An R list of the six arguments of hfb_arrow_vector(), in their order. */
static arrow_array listed_array(SEXP b, const char **name) {
  if (TYPEOF(b) != VECSXP || XLENGTH(b) != 6)
    error("hfb_arrow_list(): buffers must be a list of 6");
  *name = arrow_type_name(VECTOR_ELT(b, 0));
  return arrow_array_at(VECTOR_ELT(b, 1), VECTOR_ELT(b, 2), VECTOR_ELT(b, 3), VECTOR_ELT(b, 4),
                        VECTOR_ELT(b, 5));
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
  arrow_need_values(&o);
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
    SET_VECTOR_ELT(out, i, arrow_copy(child_type, &row));
  }
  UNPROTECT(1);
  return out;
}
