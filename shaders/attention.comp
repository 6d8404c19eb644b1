#version 450
// Single-head self-attention. A workgroup takes QB query positions of one sample: scores of
// each against every key, a softmax per row, then probability-weighted sums of v. With QB
// queries per workgroup every k and v value loaded serves QB multiply-adds (lavapipe pays
// per load, not per FMA). qkv is [N, 3C, L] (q, k, v blocks); y is [N, C, L].
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint QB = 8u; // queries per workgroup: 8 when QB*L <= 4096 and C <= 256, else 1
layout(set = 0, binding = 0) readonly buffer QKV { float qkv[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, qkv) F16_OUT(1, y)
layout(push_constant) uniform PC { uint N; uint C; uint L; float scale; } pc;

// Shared arrays sized by specialization: the defaults (24 KiB in all) cover every case the
// builder allows; a device with less shared memory gets the node's own QB*L and C*QB.
layout(constant_id = 1) const uint P_LEN = 4096u;
layout(constant_id = 2) const uint QS_LEN = 2048u;
shared float p[P_LEN];   // p[q * L + j]
shared float qs[QS_LEN]; // qs[c * QB + q]
shared float row_max[8], row_inv[8];

void main() {
  uint blocks = (pc.L + QB - 1u) / QB;
  uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (wg >= pc.N * blocks) return;
  uint n = wg / blocks, i0 = (wg % blocks) * QB, C = pc.C, L = pc.L, lid = gl_LocalInvocationID.x;
  uint nq = min(QB, L - i0);
  uint q0 = n * 3u * C * L, k0 = q0 + C * L, v0 = k0 + C * L;
  for (uint t = lid; t < C * QB; t += 64u) {
    uint c = t / QB, q = t % QB;
    qs[t] = q < nq ? LD(qkv, q0 + c * L + i0 + q) : 0.0;
  }
  barrier();
  for (uint j = lid; j < L; j += 64u) {
    float s[QB];
    for (uint q = 0u; q < QB; q++) s[q] = 0.0;
    for (uint c = 0u; c < C; c++) {
      float kv = LD(qkv, k0 + c * L + j);
      for (uint q = 0u; q < QB; q++) s[q] = fma(qs[c * QB + q], kv, s[q]);
    }
    for (uint q = 0u; q < QB; q++) p[q * L + j] = s[q] * pc.scale;
  }
  barrier();
  if (lid < nq) { // one row per invocation: L is small where QB > 1
    float m = -1.0 / 0.0;
    for (uint j = 0u; j < L; j++) m = max(m, p[lid * L + j]);
    float sum = 0.0;
    for (uint j = 0u; j < L; j++) sum += exp(p[lid * L + j] - m);
    row_max[lid] = m;
    row_inv[lid] = 1.0 / sum;
  }
  barrier();
  for (uint t = lid; t < nq * L; t += 64u) {
    uint q = t / L;
    p[t] = exp(p[t] - row_max[q]) * row_inv[q];
  }
  barrier();
  for (uint c = lid; c < C; c += 64u) {
    float o[QB];
    for (uint q = 0u; q < QB; q++) o[q] = 0.0;
    for (uint j = 0u; j < L; j++) {
      float vv = LD(qkv, v0 + c * L + j);
      for (uint q = 0u; q < QB; q++) o[q] = fma(p[q * L + j], vv, o[q]);
    }
    for (uint q = 0u; q < nq; q++) ST(y, (n * C + c) * L + i0 + q, o[q]);
  }
}
