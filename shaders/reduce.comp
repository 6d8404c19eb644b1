#version 450
// Reductions (sum, mean, var, max, sum of squares, log-sum-exp) over any set of the four
// dimensions. One workgroup per output element; each invocation strides over the reduced
// index space, then a shared-memory tree combines the 64 partial results. Sums accumulate
// in fp32 with the two-pass form for var and log-sum-exp.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint FN = 0u; // gr_reduce

layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, x) // results stay fp32: small, and the likeliest to pass half's range

layout(push_constant) uniform PC {
  uvec4 kept;    // extents of the output (1 on reduced dimensions)
  uvec4 red;     // extents of the reduced space (1 on kept dimensions)
  uvec4 stride;  // input strides
  uint outputs;
} pc;

uint idx4(uvec4 at, uvec4 stride) { return at.x * stride.x + at.y * stride.y + at.z * stride.z + at.w * stride.w; }

shared float part[64];
shared float part2[64];

void tree(bool take_max) {
  for (uint s = 32u; s > 0u; s >>= 1) {
    barrier();
    if (gl_LocalInvocationID.x < s) {
      uint j = gl_LocalInvocationID.x;
      part[j] = take_max ? max(part[j], part[j + s]) : part[j] + part[j + s];
      part2[j] = part2[j] + part2[j + s];
    }
  }
  barrier();
}

void main() {
  uint o = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (o >= pc.outputs) return; // uniform per workgroup
  uint r = o;
  uvec4 at;
  at.w = r % pc.kept.w; r /= pc.kept.w;
  at.z = r % pc.kept.z; r /= pc.kept.z;
  at.y = r % pc.kept.y; at.x = r / pc.kept.y;
  uint base = idx4(at, pc.stride);
  uint count = pc.red.x * pc.red.y * pc.red.z * pc.red.w;
  uint lid = gl_LocalInvocationID.x;

  // Pass 1: sum (and max for max/log-sum-exp).
  float s = 0.0, m = -1.0 / 0.0;
  for (uint k = lid; k < count; k += 64u) {
    uint q = k;
    uvec4 ri;
    ri.w = q % pc.red.w; q /= pc.red.w;
    ri.z = q % pc.red.z; q /= pc.red.z;
    ri.y = q % pc.red.y; ri.x = q / pc.red.y;
    float v = LD(x, base + idx4(ri, pc.stride));
    s += FN == 4u ? v * v : v;
    m = max(m, v);
  }
  part[lid] = (FN == 3u || FN == 5u) ? m : s;
  part2[lid] = 0.0;
  tree(FN == 3u || FN == 5u);
  float first = part[0];
  if (FN == 2u || FN == 5u) {
    // Pass 2: squared deviations from the mean, or exp(v - max).
    float mean = first / float(count);
    float t = 0.0;
    for (uint k = lid; k < count; k += 64u) {
      uint q = k;
      uvec4 ri;
      ri.w = q % pc.red.w; q /= pc.red.w;
      ri.z = q % pc.red.z; q /= pc.red.z;
      ri.y = q % pc.red.y; ri.x = q / pc.red.y;
      float v = LD(x, base + idx4(ri, pc.stride));
      t += FN == 2u ? (v - mean) * (v - mean) : exp(v - first);
    }
    barrier();
    part[lid] = 0.0;
    part2[lid] = t;
    tree(false);
    if (lid == 0u) y[o] = FN == 2u ? part2[0] / float(count) : first + log(part2[0]);
    return;
  }
  if (lid == 0u) y[o] = FN == 1u ? first / float(count) : first;
}
