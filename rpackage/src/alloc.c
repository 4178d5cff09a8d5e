/* R vectors that Python fills (safe_load_file), allocated but not initialised.
 *
 * numeric(n) writes n zeros that the fill overwrites at once. For large results that first
 * write is where the memory is first touched, so every page fault is paid in R's one thread
 * before Python starts. Left untouched, the pages are faulted in by Python's fill, in parallel.
 * The vector is never seen by R code before it is filled: on any error it is dropped.
 *
 * Large results (1 MiB and more) live outside R's heap, as ALTREP vectors over memory mapped
 * here. Measured in a long R session (bench/safetensors, mode warm), R's heap shrinks at every
 * full collection, so each load of a model had to grow it again through a full collection
 * (0.15 s of CPU once reticulate is loaded, most of the load of an 84 MB file), and each result
 * page was faulted in afresh. Outside the heap no collection is needed to make room, and the
 * blocks of results that R has collected are kept (MADV_FREE: the kernel may take them back at
 * any time) for the next load to reuse without page faults; what the next load does not reuse
 * is unmapped when it ends (hfb_release_spare), and they never exceed the peak of live results.
 * Since R does not count this memory, a full collection is asked for when the live blocks
 * outgrow 1 GiB, then twice what they were at the last such collection.
 *
 * To R such a vector is an ordinary double or integer vector: it is read, modified, copied and
 * serialized like one (a copy or a readRDS() gives an ordinary vector). */
#include <stdlib.h>
#include <string.h>
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include <R_ext/Rdynload.h>
#include "altrep_base.h"
#include "hfbridge.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define HFB_MAPPED 1
#endif

#define MAPPED_MIN (1 << 20)  /* bytes: smaller results are ordinary R vectors */
#define SPARE_MAX 1024        /* blocks kept for reuse at most */

typedef struct {
  void *addr;
  size_t bytes;  /* a multiple of the page size */
} block_t;

static R_altrep_class_t real_class, integer_class;

#ifdef HFB_MAPPED
static double live_bytes = 0;            /* mapped by live vectors */
static double peak_bytes = 0;            /* the most live_bytes has been */
static double collect_at = 1073741824.0; /* ask R for a full collection beyond this */
static block_t spare[SPARE_MAX];         /* blocks of collected vectors, kept for reuse */
static int n_spare = 0;
static double spare_bytes = 0;           /* at most peak_bytes */

static size_t page_rounded(size_t bytes) {
  size_t page = 4096;
  return (bytes + page - 1) / page * page;
}

static void unmap(block_t b) {
  munmap(b.addr, b.bytes);
}

/* A block of exactly `bytes` (page-rounded), reused if one is spare. */
static void *take_block(size_t bytes) {
  for (int i = n_spare - 1; i >= 0; i--) {
    if (spare[i].bytes == bytes) {
      void *addr = spare[i].addr;
      spare_bytes -= bytes;
      spare[i] = spare[--n_spare];
      return addr;
    }
  }
  void *addr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return addr == MAP_FAILED ? NULL : addr;
}

static void give_back(block_t b) {
  if (n_spare == SPARE_MAX || spare_bytes + b.bytes > peak_bytes) {
    unmap(b);
    return;
  }
#ifdef MADV_FREE
  madvise(b.addr, b.bytes, MADV_FREE);
#endif
  spare[n_spare++] = b;
  spare_bytes += b.bytes;
}

static void finalize_block(SEXP ptr) {
  block_t *b = R_ExternalPtrAddr(ptr);
  if (b == NULL) return;
  R_ClearExternalPtr(ptr);
  live_bytes -= b->bytes;
  if (b->addr != NULL) give_back(*b);
  free(b);
}
#endif

static void *block_data(SEXP x) {
  block_t *b = hfb_altrep_state(x);
  if (b == NULL || b->addr == NULL) error("hfbridge: the memory of this tensor was freed");
  return b->addr;
}

static void *block_dataptr(SEXP x, Rboolean writeable) {
  return block_data(x);
}

static const void *block_dataptr_or_null(SEXP x) {
  return block_data(x);
}

static Rboolean block_inspect(SEXP x, int pre, int deep, int pvec,
                              void (*inspect_subtree)(SEXP, int, int, int)) {
  Rprintf(" hfbridge tensor (%s, length %.0f, memory outside R's heap)\n",
          type2char(TYPEOF(x)), (double) XLENGTH(x));
  return TRUE;
}

#ifdef HFB_MAPPED
static SEXP alloc_mapped(SEXPTYPE type, R_xlen_t n, size_t bytes) {
  bytes = page_rounded(bytes);
  if (live_bytes + bytes > collect_at) {
    R_gc();  /* the finalizers of collected results give their blocks back */
    if (2 * (live_bytes + bytes) > collect_at) collect_at = 2 * (live_bytes + bytes);
  }
  block_t *b = calloc(1, sizeof(block_t));
  if (b == NULL) return allocVector(type, n);
  /* The vector's pointer owns the block from here on: an R error frees it (finalize_block). */
  SEXP x = PROTECT(hfb_altrep_new(type == REALSXP ? real_class : integer_class, b, n, R_NilValue,
                                  finalize_block));
  b->addr = take_block(bytes);
  if (b->addr == NULL) {
    UNPROTECT(1);
    return allocVector(type, n);  /* R's own error if memory is really short */
  }
  b->bytes = bytes;
  live_bytes += bytes;
  if (live_bytes > peak_bytes) peak_bytes = live_bytes;
  UNPROTECT(1);
  return x;
}
#endif

SEXP hfb_alloc_unfilled(SEXP type, SEXP length) {
  if (!isString(type) || XLENGTH(type) != 1 || !isReal(length) || XLENGTH(length) != 1)
    error("hfb_alloc_unfilled(type, length): a string and a double");
  double n = REAL(length)[0];
  if (!R_FINITE(n) || n < 0 || n > (double) R_XLEN_T_MAX)
    error("hfb_alloc_unfilled(): invalid length");
  const char *name = CHAR(STRING_ELT(type, 0));
  SEXPTYPE sexptype;
  size_t width;
  if (strcmp(name, "double") == 0) {
    sexptype = REALSXP;
    width = sizeof(double);
  } else if (strcmp(name, "integer") == 0) {
    sexptype = INTSXP;
    width = sizeof(int);
  } else {
    error("hfb_alloc_unfilled(): type must be \"double\" or \"integer\"");
  }
#ifdef HFB_MAPPED
  if (n * width >= MAPPED_MIN) return alloc_mapped(sexptype, (R_xlen_t) n, (size_t) n * width);
#endif
  return allocVector(sexptype, (R_xlen_t) n);
}

/* Unmaps the spare blocks: called when a load ends, so that blocks wait for one load only. */
SEXP hfb_release_spare(void) {
#ifdef HFB_MAPPED
  while (n_spare > 0) unmap(spare[--n_spare]);
  spare_bytes = 0;
#endif
  return R_NilValue;
}

/* The smallest result, in bytes, that lives outside R's heap (Inf: none does). */
SEXP hfb_mapped_min(void) {
#ifdef HFB_MAPPED
  return ScalarReal(MAPPED_MIN);
#else
  return ScalarReal(R_PosInf);
#endif
}

/* Called once by R_init_hfbridge (init.c). */
void hfb_init_alloc(DllInfo *dll) {
  static const hfb_altrep_methods methods = {block_inspect, block_dataptr, block_dataptr_or_null};
  real_class = hfb_altrep_class("hfbridge_tensor_double", REALSXP, dll, &methods);
  integer_class = hfb_altrep_class("hfbridge_tensor_integer", INTSXP, dll, &methods);
}
