/* The package's entry points: the routines R calls through .Call() and the set-up that
 * R_init_hfbridge() runs, declared once for init.c and the files that define them. */
#ifndef HFB_HFBRIDGE_H
#define HFB_HFBRIDGE_H
#include <Rinternals.h>
#include <R_ext/Rdynload.h>

SEXP hfb_alloc_unfilled(SEXP type, SEXP length);                              /* alloc.c */
SEXP hfb_release_spare(void);                                                 /* alloc.c */
SEXP hfb_mapped_min(void);                                                    /* alloc.c */
SEXP hfb_split_rows(SEXP columns, SEXP splits, SEXP klass, SEXP negative_na); /* split_rows.c */
SEXP hfb_arrow_vector(SEXP type, SEXP length, SEXP offset, SEXP validity, SEXP values,
                      SEXP data, SEXP keeper);                                /* lazy_strings.c */
SEXP hfb_arrow_list(SEXP offsets, SEXP child, SEXP na);                       /* columns.c */
SEXP hfb_buffer_view(SEXP type, SEXP address, SEXP length, SEXP keeper);     /* views.c */

void hfb_init_altrep(void);                                                   /* altrep_base.c */
void hfb_init_alloc(DllInfo *dll);                                            /* alloc.c */
void hfb_init_lazy_strings(DllInfo *dll);                                     /* lazy_strings.c */
void hfb_init_views(DllInfo *dll);                                            /* views.c */
void R_init_hfbridge(DllInfo *dll);                                           /* init.c */

#endif
