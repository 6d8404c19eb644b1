#version 450
// Sinusoidal embedding of diffusion times: y[n, i] = sin(t[n]·f_i), y[n, half + i] =
// cos(t[n]·f_i), f_i = max_period^(-i / half).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer T { float t[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_OUT(1, y) // times stay fp32: half's 11 bits would blur sin(t·f) for large t
layout(push_constant) uniform PC { uint N; uint half_dim; float log_max_period; } pc;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i >= pc.N * pc.half_dim) return;
  uint n = i / pc.half_dim, k = i % pc.half_dim;
  float f = exp(-pc.log_max_period * float(k) / float(pc.half_dim));
  float a = t[n] * f;
  ST(y, n * 2u * pc.half_dim + k, sin(a));
  ST(y, n * 2u * pc.half_dim + pc.half_dim + k, cos(a));
}
