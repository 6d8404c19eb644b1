#version 450
// Small dense linear algebra in one workgroup (C <= 512, fp32), working in the output
// buffer (coherent: invocations read each other's writes after each barrier).
//   MODE 0: inverse by in-place Gauss-Jordan with partial pivoting, columns unswapped at the end.
//   MODE 1: packed LU with partial pivoting (rows swapped in place; unit L below the diagonal).
//   MODE 2: y[0] = Σ log|x[k, k]| of a packed LU (fp32 sum).
// Pivot: the largest |a[i, k]|, i >= k, lowest i on ties (as the CPU reference).
// The workgroup size is constant_id 1 (a power of two up to 256; the lowering takes 256 or
// what the device allows): Vulkan's minimum is 128 invocations.
layout(local_size_x_id = 1) in;
layout(constant_id = 0) const uint MODE = 0u;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) coherent buffer Y { float a[]; };
layout(push_constant) uniform PC { uint C; } pc;

const uint T = gl_WorkGroupSize.x;
shared float s_val[256];
shared uint s_row[256];
shared float s_col[512]; // column k of the other rows, or the multipliers
shared uint s_piv[512];

#define SYNC() { memoryBarrier(); barrier(); }

void main() {
  uint t = gl_LocalInvocationID.x, C = pc.C, CC = C * C;
  if (MODE == 2u) {
    if (t == 0u) {
      float s = 0.0;
      for (uint k = 0u; k < C; k++) s += log(abs(x[k * C + k]));
      a[0] = s;
    }
    return;
  }
  for (uint e = t; e < CC; e += T) a[e] = x[e];
  SYNC();
  for (uint k = 0u; k < C; k++) {
    float best = -1.0;
    uint bi = k;
    for (uint i = k + t; i < C; i += T) {
      float v = abs(a[i * C + k]);
      if (v > best) { best = v; bi = i; }
    }
    s_val[t] = best;
    s_row[t] = bi;
    SYNC();
    for (uint h = T / 2u; h > 0u; h >>= 1) {
      if (t < h && (s_val[t + h] > s_val[t] || (s_val[t + h] == s_val[t] && s_row[t + h] < s_row[t]))) {
        s_val[t] = s_val[t + h];
        s_row[t] = s_row[t + h];
      }
      SYNC();
    }
    uint p = s_row[0];
    float inv = 1.0 / a[p * C + k];
    SYNC(); // everyone has read the pivot before rows move
    if (p != k)
      for (uint j = t; j < C; j += T) {
        float u = a[k * C + j];
        a[k * C + j] = a[p * C + j];
        a[p * C + j] = u;
      }
    if (t == 0u) s_piv[k] = p;
    SYNC();
    if (MODE == 0u) {
      for (uint i = t; i < C; i += T) s_col[i] = i == k ? 0.0 : a[i * C + k];
      for (uint j = t; j < C; j += T) a[k * C + j] = (j == k ? 1.0 : a[k * C + j]) * inv;
      SYNC();
      for (uint e = t; e < CC; e += T) {
        uint i = e / C, j = e - i * C;
        if (i != k) a[e] = (j == k ? 0.0 : a[e]) - s_col[i] * a[k * C + j];
      }
    } else {
      for (uint i = k + 1u + t; i < C; i += T) {
        float l = a[i * C + k] * inv;
        a[i * C + k] = l;
        s_col[i] = l;
      }
      SYNC();
      uint m = C - k - 1u;
      for (uint e = t; e < m * m; e += T) {
        uint i = k + 1u + e / m, j = k + 1u + e % m;
        a[i * C + j] -= s_col[i] * a[k * C + j];
      }
    }
    SYNC();
  }
  if (MODE == 0u)
    for (uint k = C; k-- > 0u;) {
      uint p = s_piv[k];
      if (p != k) {
        for (uint i = t; i < C; i += T) {
          float u = a[i * C + k];
          a[i * C + k] = a[i * C + p];
          a[i * C + p] = u;
        }
        SYNC();
      }
    }
}
