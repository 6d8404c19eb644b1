#version 450
// Softmax over the last dimension: one workgroup per row, max then sum then normalise.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, x) F16_OUT(1, y)
layout(push_constant) uniform PC { uint rows; uint cols; } pc;

shared float part[64];

float reduce64(float v, bool take_max) {
  uint lid = gl_LocalInvocationID.x;
  part[lid] = v;
  for (uint s = 32u; s > 0u; s >>= 1) {
    barrier();
    if (lid < s) part[lid] = take_max ? max(part[lid], part[lid + s]) : part[lid] + part[lid + s];
  }
  barrier();
  float r = part[0];
  barrier();
  return r;
}

void main() {
  uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= pc.rows) return;
  uint base = row * pc.cols, lid = gl_LocalInvocationID.x;
  float m = -1.0 / 0.0;
  for (uint i = lid; i < pc.cols; i += 64u) m = max(m, LD(x, base + i));
  m = reduce64(m, true);
  float s = 0.0;
  for (uint i = lid; i < pc.cols; i += 64u) s += exp(LD(x, base + i) - m);
  s = reduce64(s, false);
  float inv = 1.0 / s;
  for (uint i = lid; i < pc.cols; i += 64u) ST(y, base + i, exp(LD(x, base + i) - m) * inv);
}
