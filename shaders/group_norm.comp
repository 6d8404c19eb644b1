#version 450
// Group normalisation, one workgroup per (sample, group): sums of x - s and (x - s)² in one
// pass (s = the group's first value, which keeps E[(x-s)²] - E[x-s]² accurate in fp32 when
// the mean is far from 0), then (x - mean) * rsqrt(var + eps) * gamma + beta and the fused
// epilogue (SiLU, per-sample scale/shift from a time embedding, ...), in one dispatch. The
// second pass walks a channel at a time where a channel fills the workgroup.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint HAS_GAMMA = 0u;
layout(constant_id = 1) const uint HAS_BETA = 0u;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer G { float gamma[]; };
layout(set = 0, binding = 2) readonly buffer Bt { float beta[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
#include "storage.glsl"
F16_IN(0, x) F16_IN(1, gamma) F16_IN(2, beta) F16_OUT(3, y)
#define EP_BINDING 4
#include "epilogue.glsl"

layout(push_constant) uniform PC { uint N; uint C; uint spatial; uint groups; float eps; } pc;

shared vec2 part[64];

vec2 sum64(vec2 v) {
  uint lid = gl_LocalInvocationID.x;
  part[lid] = v;
  for (uint s = 32u; s > 0u; s >>= 1) {
    barrier();
    if (lid < s) part[lid] += part[lid + s];
  }
  barrier();
  return part[0];
}

void main() {
  uint ng = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (ng >= pc.N * pc.groups) return;
  uint n = ng / pc.groups, g = ng % pc.groups, cg = pc.C / pc.groups;
  uint base = (n * pc.C + g * cg) * pc.spatial, count = cg * pc.spatial, lid = gl_LocalInvocationID.x;
  float shift = LD(x, base);
  vec2 acc = vec2(0.0);
  for (uint i = lid; i < count; i += 64u) {
    float d = LD(x, base + i) - shift;
    acc += vec2(d, d * d);
  }
  vec2 m = sum64(acc) / float(count);
  float mean = shift + m.x;
  float inv = inversesqrt(max(m.y - m.x * m.x, 0.0) + pc.eps);
  if (pc.spatial >= 64u) {
    // a channel at a time: gamma and beta loaded once per channel, no division per value
    // (lavapipe runs each load and integer division as a per-lane scalar loop)
    for (uint c = 0u; c < cg; c++) {
      const uint ch = g * cg + c, cb = base + c * pc.spatial, nc = n * pc.C + ch;
      const float a = inv * (HAS_GAMMA != 0u ? LD(gamma, ch) : 1.0);
      const float b = (HAS_BETA != 0u ? LD(beta, ch) : 0.0) - mean * a;
      for (uint i = lid; i < pc.spatial; i += 64u)
        ST(y, cb + i, epilogue(fma(LD(x, cb + i), a, b), cb + i, nc, ch));
    }
    return;
  }
  for (uint i = lid; i < count; i += 64u) {
    uint ch = g * cg + i / pc.spatial;
    float v = (LD(x, base + i) - mean) * inv;
    if (HAS_GAMMA != 0u) v *= LD(gamma, ch);
    if (HAS_BETA != 0u) v += LD(beta, ch);
    ST(y, base + i, epilogue(v, base + i, n * pc.C + ch, ch));
  }
}
