#version 450
// space_to_depth (PyTorch pixel_unshuffle) and depth_to_space (pixel_shuffle): the space-side
// element [n, c, h, w] is the depth-side element [n, c·b·b + (h%b)·b + w%b, h/b, w/b].
// One output element per invocation; C, H, W are the space side's.
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TO_DEPTH = 1u;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform PC { uint C, H, W, b, count; } pc;

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint b = pc.b, h2 = pc.H / b, w2 = pc.W / b;
  if (TO_DEPTH != 0u) { // i indexes [N, C·b·b, H/b, W/b]
    uint w = i % w2, r = i / w2;
    uint h = r % h2; r /= h2;
    uint cc = r % (pc.C * b * b), n = r / (pc.C * b * b);
    uint c = cc / (b * b), k = cc % (b * b);
    y[i] = x[((n * pc.C + c) * pc.H + h * b + k / b) * pc.W + w * b + k % b];
  } else { // i indexes [N, C, H, W]
    uint w = i % pc.W, r = i / pc.W;
    uint h = r % pc.H, nc = r / pc.H;
    y[i] = x[((nc * b * b + (h % b) * b + w % b) * h2 + h / b) * w2 + w / b];
  }
}
