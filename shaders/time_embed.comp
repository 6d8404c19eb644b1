#version 450
// Sinusoidal embedding of diffusion times: y[n, i] = sin(t[n]·f_i), y[n, half + i] =
// cos(t[n]·f_i), f_i = max_period^(-i / half).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer T { float t[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform PC { uint N; uint half_dim; float log_max_period; } pc;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i >= pc.N * pc.half_dim) return;
  uint n = i / pc.half_dim, k = i % pc.half_dim;
  float f = exp(-pc.log_max_period * float(k) / float(pc.half_dim));
  float a = t[n] * f;
  y[n * 2u * pc.half_dim + k] = sin(a);
  y[n * 2u * pc.half_dim + pc.half_dim + k] = cos(a);
}
