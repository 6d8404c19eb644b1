// The fused epilogue: up to four elementwise steps applied to each output value of a kernel
// (bias, activation, residual add, per-sample scale/shift, ...), chosen by specialization
// constants so that unused steps compile away. The scalar functions mirror graph/scalar.c.
//
// Before including, enable GL_GOOGLE_include_directive and define EP_BINDING: the first of the four operand bindings (readonly
// float buffers; unused ones are bound to a dummy by the runtime).
// Step code: bits 0-7 function (gr_unary or gr_binary), bit 8 binary, bits 9-10 operand
// broadcast (0 full, 1 per (n,c), 2 per c, 3 scalar), bit 11 operand first (operand ∘ v),
// bits 12-31 the output's channel count C when a per-(n,c) operand is a column window of a
// wider [N, ld] matrix: then A = ld and B = the window's first column (a binary step has no
// other use for A and B).
#ifndef EP_BINDING
#error "define EP_BINDING before including epilogue.glsl"
#endif

layout(constant_id = 8) const uint EP_COUNT = 0;
layout(constant_id = 9) const uint EP_CODE0 = 0;
layout(constant_id = 10) const uint EP_CODE1 = 0;
layout(constant_id = 11) const uint EP_CODE2 = 0;
layout(constant_id = 12) const uint EP_CODE3 = 0;
layout(constant_id = 13) const float EP_A0 = 0.0;
layout(constant_id = 14) const float EP_A1 = 0.0;
layout(constant_id = 15) const float EP_A2 = 0.0;
layout(constant_id = 16) const float EP_A3 = 0.0;
layout(constant_id = 17) const float EP_B0 = 0.0;
layout(constant_id = 18) const float EP_B1 = 0.0;
layout(constant_id = 19) const float EP_B2 = 0.0;
layout(constant_id = 20) const float EP_B3 = 0.0;

// APS_FEW_BINDINGS (the shader's <name>_b4 variant, for devices with 4 storage buffers per
// stage): the operands alias binding 0 (a read-only input of every kernel that includes this)
// so the kernel has no binding of its own for them; plans for such devices fuse no binary
// step (graph/passes/fusion.c) and the lowering refuses one (graph/vulkan/lower_common.c).
#ifdef APS_FEW_BINDINGS
#define EP_OPERAND_BINDING(i) 0
#else
#define EP_OPERAND_BINDING(i) (EP_BINDING + i)
#endif
layout(set = 0, binding = EP_OPERAND_BINDING(0)) readonly buffer EpOperand0 { float ep_op0[]; };
layout(set = 0, binding = EP_OPERAND_BINDING(1)) readonly buffer EpOperand1 { float ep_op1[]; };
layout(set = 0, binding = EP_OPERAND_BINDING(2)) readonly buffer EpOperand2 { float ep_op2[]; };
layout(set = 0, binding = EP_OPERAND_BINDING(3)) readonly buffer EpOperand3 { float ep_op3[]; };
#include "storage.glsl"
F16_IN(EP_BINDING + 0, ep_op0) F16_IN(EP_BINDING + 1, ep_op1) F16_IN(EP_BINDING + 2, ep_op2) F16_IN(EP_BINDING + 3, ep_op3)

float aps_unary(uint f, float x, float a, float b) {
  switch (f) {
  case 0u: return x;                                  // identity
  case 1u: return exp(x);
  case 2u: return log(x);
  case 3u: return tanh(x);
  case 4u: return 1.0 / (1.0 + exp(-x));              // sigmoid
  case 5u: return x / (1.0 + exp(-x));                // silu
  case 6u: return x >= 0.0 ? x : a * x;               // leaky_relu
  case 7u: return x > 20.0 ? x : log(1.0 + exp(x));   // softplus
  case 8u: return x * x;
  case 9u: return sqrt(x);
  case 10u: return inversesqrt(x);
  case 11u: return abs(x);
  case 12u: return -x;
  case 13u: return max(x, 0.0);                       // relu
  case 14u: return x * a + b;                         // affine
  case 15u: return min(max(x, a), b);                 // clamp
  }
  return x;
}

float aps_binary(uint f, float x, float y) {
  switch (f) {
  case 0u: return x + y;
  case 1u: return x - y;
  case 2u: return x * y;
  case 3u: return x / y;
  case 4u: return max(x, y);
  case 5u: return min(x, y);
  }
  return x;
}

float ep_operand(uint i, uint code, float a, float b, uint idx, uint nc, uint c) {
  uint bcast = (code >> 9) & 3u, channels = code >> 12;
  uint j = bcast == 0u ? idx : bcast == 2u ? c : bcast == 3u ? 0u
         : channels != 0u ? (nc / channels) * uint(a) + uint(b) + c : nc;
  if (i == 0u) return LD(ep_op0, j);
  if (i == 1u) return LD(ep_op1, j);
  if (i == 2u) return LD(ep_op2, j);
  return LD(ep_op3, j);
}

float ep_step(uint i, uint code, float a, float b, float v, uint idx, uint nc, uint c) {
  uint f = code & 255u;
  if ((code & 256u) == 0u)
    return aps_unary(f, v, a, b);
  float o = ep_operand(i, code, a, b, idx, nc, c);
  return (code & 2048u) != 0u ? aps_binary(f, o, v) : aps_binary(f, v, o);
}

// idx: flat output index; nc: n * C + c; c: channel (dimension 1 of NCHW, or the last
// dimension of a matmul's output).
float epilogue(float v, uint idx, uint nc, uint c) {
  if (EP_COUNT > 0u) v = ep_step(0u, EP_CODE0, EP_A0, EP_B0, v, idx, nc, c);
  if (EP_COUNT > 1u) v = ep_step(1u, EP_CODE1, EP_A1, EP_B1, v, idx, nc, c);
  if (EP_COUNT > 2u) v = ep_step(2u, EP_CODE2, EP_A2, EP_B2, v, idx, nc, c);
  if (EP_COUNT > 3u) v = ep_step(3u, EP_CODE3, EP_A3, EP_B3, v, idx, nc, c);
  return v;
}
