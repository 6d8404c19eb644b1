#version 450
// Group normalisation, one workgroup per (sample, group): mean, then variance about it
// (two passes, fp32), then (x - mean) * rsqrt(var + eps) * gamma + beta and the fused
// epilogue (SiLU, per-sample scale/shift from a time embedding, ...), in one dispatch.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint HAS_GAMMA = 0u;
layout(constant_id = 1) const uint HAS_BETA = 0u;

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer G { float gamma[]; };
layout(set = 0, binding = 2) readonly buffer Bt { float beta[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
#define EP_BINDING 4
#include "epilogue.glsl"

layout(push_constant) uniform PC { uint N; uint C; uint spatial; uint groups; float eps; } pc;

shared float part[64];

float sum64(float v) {
  uint lid = gl_LocalInvocationID.x;
  part[lid] = v;
  for (uint s = 32u; s > 0u; s >>= 1) {
    barrier();
    if (lid < s) part[lid] += part[lid + s];
  }
  barrier();
  float r = part[0];
  barrier();
  return r;
}

void main() {
  uint ng = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (ng >= pc.N * pc.groups) return;
  uint n = ng / pc.groups, g = ng % pc.groups, cg = pc.C / pc.groups;
  uint base = (n * pc.C + g * cg) * pc.spatial, count = cg * pc.spatial, lid = gl_LocalInvocationID.x;
  float s = 0.0;
  for (uint i = lid; i < count; i += 64u) s += x[base + i];
  float mean = sum64(s) / float(count);
  float q = 0.0;
  for (uint i = lid; i < count; i += 64u) {
    float d = x[base + i] - mean;
    q += d * d;
  }
  float inv = inversesqrt(sum64(q) / float(count) + pc.eps);
  for (uint i = lid; i < count; i += 64u) {
    uint ch = g * cg + i / pc.spatial;
    float v = (x[base + i] - mean) * inv;
    if (HAS_GAMMA != 0u) v *= gamma[ch];
    if (HAS_BETA != 0u) v += beta[ch];
    y[base + i] = epilogue(v, base + i, n * pc.C + ch, ch);
  }
}
