// The only C Strata uses: OpenBLAS's CBLAS interface and its thread control, and LAPACKE (the
// symmetric eigensolver behind `strata embed --map`'s PCA).
#include <cblas.h>
#include <lapacke.h>
