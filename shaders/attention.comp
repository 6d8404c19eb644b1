#version 450
// Single-head self-attention, one workgroup per (sample n, query position i): scores of
// query i against every key, softmax in shared memory, then each invocation produces some
// output channels as probability-weighted sums of v. qkv is [N, 3C, L] (q, k, v blocks).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer QKV { float qkv[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform PC { uint N; uint C; uint L; float scale; } pc;

shared float p[4096];
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
  uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (wg >= pc.N * pc.L) return;
  uint n = wg / pc.L, i = wg % pc.L, C = pc.C, L = pc.L, lid = gl_LocalInvocationID.x;
  uint q0 = n * 3u * C * L, k0 = q0 + C * L, v0 = k0 + C * L;
  float m = -1.0 / 0.0;
  for (uint j = lid; j < L; j += 64u) {
    float d = 0.0;
    for (uint c = 0u; c < C; c++) d += qkv[q0 + c * L + i] * qkv[k0 + c * L + j];
    d *= pc.scale;
    p[j] = d;
    m = max(m, d);
  }
  m = reduce64(m, true);
  float s = 0.0;
  for (uint j = lid; j < L; j += 64u) {
    float e = exp(p[j] - m);
    p[j] = e;
    s += e;
  }
  float inv = 1.0 / reduce64(s, false); // its barriers also publish p[]
  for (uint c = lid; c < C; c += 64u) {
    float o = 0.0;
    for (uint j = 0u; j < L; j++) o += p[j] * qkv[v0 + c * L + j];
    y[(n * C + c) * L + i] = o * inv;
  }
}
