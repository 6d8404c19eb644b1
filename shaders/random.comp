#version 450
// Counter-based random numbers (gr_random in graph/graph.h): block b of 4 elements is
// Philox4x32-10(counter {b, 0, 0, 0}, key {seed, stream}); uniform (w >> 8)·2^-24 or
// Box-Muller normals. Every float step mirrors gr_box_muller (graph/cpu/reference_random.c):
// fp32 polynomials instead of log/sin/cos, whose precision Vulkan leaves loose (2^-11 for sin).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint NORMAL = 0u;
layout(set = 0, binding = 0) readonly buffer S { float seed[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform PC { uint count, stream, seed_count; } pc;

uvec4 philox(uvec4 c, uvec2 k) {
  for (int r = 0; r < 10; r++) {
    if (r > 0) k += uvec2(0x9E3779B9u, 0xBB67AE85u);
    uint hi0, lo0, hi1, lo1;
    umulExtended(0xD2511F53u, c.x, hi0, lo0);
    umulExtended(0xCD9E8D57u, c.z, hi1, lo1);
    c = uvec4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}

uint seed_word(float v) { return v >= 1.0 ? uint(min(v, 16777215.0)) : 0u; }

vec2 box_muller(uint w0, uint w1) {
  uint m = (w0 >> 8) + 1u;
  int e = findMSB(m);
  float f = ldexp(float(m), -e);
  if (f > 1.41421356) {
    f *= 0.5;
    e += 1;
  }
  float s = (f - 1.0) / (f + 1.0), z = s * s;
  float lnf = 2.0 * s * (1.0 + z * (0.333333333 + z * (0.2 + z * (0.142857143 + z * 0.111111111))));
  float lnu = float(e - 24) * 0.693147181 + lnf;
  float r = sqrt(max(-2.0 * lnu, 0.0));
  uint yv = w1 >> 8, q = yv >> 22;
  float t = float(yv & 0x3FFFFFu) * 2.38418579e-7;
  bool swp = t > 0.5;
  float a = (swp ? 1.0 - t : t) * 1.57079633, a2 = a * a;
  float sa = a * (1.0 - a2 * (0.166666667 - a2 * (8.33333333e-3 - a2 * (1.98412698e-4 - a2 * 2.75573192e-6))));
  float ca = 1.0 - a2 * (0.5 - a2 * (4.16666667e-2 - a2 * (1.38888889e-3 - a2 * (2.48015873e-5 - a2 * 2.75573192e-7))));
  float c = swp ? sa : ca, sn = swp ? ca : sa;
  float cq = q == 0u ? c : q == 1u ? -sn : q == 2u ? -c : sn;
  float sq = q == 0u ? sn : q == 1u ? c : q == 2u ? -sn : -c;
  return vec2(r * cq, r * sq);
}

void main() {
  uint b = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (b >= (pc.count + 3u) / 4u) return;
  uint key = pc.seed_count == 1u ? seed_word(seed[0])
                                 : (seed_word(seed[0]) & 0xFFFFu) | (seed_word(seed[1]) << 16);
  uvec4 w = philox(uvec4(b, 0u, 0u, 0u), uvec2(key, pc.stream));
  vec4 v;
  if (NORMAL != 0u) {
    v = vec4(box_muller(w.x, w.y), box_muller(w.z, w.w));
  } else {
    v = vec4(w >> 8) * 5.96046448e-8;
  }
  for (uint k = 0u; k < 4u; k++)
    if (b * 4u + k < pc.count) y[b * 4u + k] = v[k];
}
