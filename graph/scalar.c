/* The scalar functions of elementwise ops, shared by the CPU reference, and their names.
 * The GLSL twins live in shaders/epilogue.glsl; keep both in step. */
#include <math.h>

#include "graph_internal.h"

const char *gr_unary_name(gr_unary f) {
  static const char *const names[] = {"identity", "exp",    "log",  "tanh",  "sigmoid", "silu",
                                      "leaky_relu", "softplus", "square", "sqrt", "rsqrt", "abs",
                                      "neg",      "relu",   "affine", "clamp"};
  _Static_assert(sizeof names / sizeof *names == GR_UNARY_COUNT, "unary names out of step");
  return (unsigned)f < GR_UNARY_COUNT ? names[f] : "unknown";
}

const char *gr_binary_name(gr_binary f) {
  static const char *const names[] = {"add", "sub", "mul", "div", "max", "min"};
  _Static_assert(sizeof names / sizeof *names == GR_BINARY_COUNT, "binary names out of step");
  return (unsigned)f < GR_BINARY_COUNT ? names[f] : "unknown";
}

const char *gr_reduce_name(gr_reduce f) {
  static const char *const names[] = {"sum", "mean", "var", "max", "sumsq", "logsumexp"};
  _Static_assert(sizeof names / sizeof *names == GR_REDUCE_COUNT, "reduce names out of step");
  return (unsigned)f < GR_REDUCE_COUNT ? names[f] : "unknown";
}

float gr_unary_eval(gr_unary f, float x, float a, float b) {
  switch (f) {
  case GR_IDENTITY: return x;
  case GR_EXP: return expf(x);
  case GR_LOG: return logf(x);
  case GR_TANH: return tanhf(x);
  case GR_SIGMOID: return 1.0f / (1.0f + expf(-x));
  case GR_SILU: return x / (1.0f + expf(-x));
  case GR_LEAKY_RELU: return x >= 0 ? x : a * x;
  case GR_SOFTPLUS: return x > 20.0f ? x : log1pf(expf(x)); /* exact to fp32 above 20 */
  case GR_SQUARE: return x * x;
  case GR_SQRT: return sqrtf(x);
  case GR_RSQRT: return 1.0f / sqrtf(x);
  case GR_ABS: return fabsf(x);
  case GR_NEG: return -x;
  case GR_RELU: return x > 0 ? x : 0.0f;
  case GR_AFFINE: return x * a + b;
  case GR_CLAMP: return fminf(fmaxf(x, a), b);
  default: return NAN;
  }
}

float gr_binary_eval(gr_binary f, float a, float b) {
  switch (f) {
  case GR_ADD: return a + b;
  case GR_SUB: return a - b;
  case GR_MUL: return a * b;
  case GR_DIV: return a / b;
  case GR_MAX: return fmaxf(a, b);
  case GR_MIN: return fminf(a, b);
  default: return NAN;
  }
}
