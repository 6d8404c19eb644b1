/* Host-side description of shaders/gemm_f32.comp: C[M×N] (+)= alpha · A[M×K] · B[K×N],
 * row-major fp32. Each workgroup covers a TILE_M × TILE_N tile of C; dispatch
 * (ceil(N / TILE_N), ceil(M / TILE_M), batches) workgroups. Keep in step with the shader. */
#ifndef APS_GEMM_F32_H
#define APS_GEMM_F32_H
#include <stdint.h>

#define APS_GEMM_F32_TILE_M 16
#define APS_GEMM_F32_TILE_N 16
#define APS_GEMM_F32_ACCUMULATE 1u /* flags: C += alpha·A·B */

/* shaders/gemm_tiled_f32.comp, the GPU-shaped variant with the same push constants and
 * bindings: workgroups of WG x WG (constant_ids 0 and 1: 16 or 8), each a 4·WG square tile;
 * dispatch (ceil(N / (4·WG)), ceil(M / (4·WG)), batches). Its shared arrays take 8 KiB. */
#define APS_GEMM_TILED_SHARED_BYTES 8192u

/* Bindings: 0 A, 1 B, 2 C, 3..6 epilogue operands (bind anything readable when unused). */
#define APS_GEMM_F32_BINDINGS 7

typedef struct aps_gemm_f32_push {
  uint32_t m, n, k;
  float alpha;
  uint32_t flags;
  uint32_t stride_a, stride_b, stride_c; /* per batch (workgroup z), in floats; 0 = shared */
} aps_gemm_f32_push;

#endif
