#version 450
// Pads NCHW planes: zeros, or a mirror image without the edge repeated (each pad < its side,
// checked by gr_pad, so one reflection lands inside).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint REFLECT = 0u;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform PC { uint H, W, OH, OW, top, left, count; } pc;

int mirror(int i, int n) {
  i = abs(i);
  return i >= n ? 2 * (n - 1) - i : i;
}

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint ow = i % pc.OW, r = i / pc.OW;
  uint oh = r % pc.OH, p = r / pc.OH;
  int H = int(pc.H), W = int(pc.W);
  int ih = int(oh) - int(pc.top), iw = int(ow) - int(pc.left);
  float v = 0.0;
  if (REFLECT != 0u) {
    v = x[(p * pc.H + uint(mirror(ih, H))) * pc.W + uint(mirror(iw, W))];
  } else if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
    v = x[(p * pc.H + uint(ih)) * pc.W + uint(iw)];
  }
  y[i] = v;
}
