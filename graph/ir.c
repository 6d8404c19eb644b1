/* The IR: tensors, nodes, scopes, sticky builder errors, and shape helpers. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

/* snprintf for names and messages that may be cut at their buffer's size, by design. */
static void bounded_printf(char *dst, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bounded_printf(char *dst, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, size, fmt, ap);
  va_end(ap);
}

const char *gr_op_name(gr_op op) {
  static const char *const names[] = {
#define GR_OP_NAME(id, name, arity) name,
      GR_OPS(GR_OP_NAME)
#undef GR_OP_NAME
  };
  _Static_assert(sizeof names / sizeof *names == GR_OP_COUNT, "op table out of step");
  return (unsigned)op < GR_OP_COUNT ? names[op] : "unknown";
}

gr_graph *gr_graph_create(void) {
  gr_graph *g = calloc(1, sizeof *g);
  if (!g)
    return NULL;
  g->cap_t = 64;
  g->cap_n = 64;
  g->t = calloc(g->cap_t, sizeof *g->t);
  g->n = calloc(g->cap_n, sizeof *g->n);
  g->nt = 1; /* handle 0 is invalid */
  if (!g->t || !g->n) {
    gr_graph_destroy(g);
    return NULL;
  }
  return g;
}

void gr_graph_destroy(gr_graph *g) {
  if (!g)
    return;
  for (uint32_t i = 0; i < g->nt; i++)
    free(g->t[i].data);
  free(g->t);
  free(g->n);
  free(g);
}

gr_graph *gr_graph_clone(const gr_graph *g) {
  gr_graph *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  *c = *g;
  c->t = malloc(g->cap_t * sizeof *c->t);
  c->n = malloc(g->cap_n * sizeof *c->n);
  if (!c->t || !c->n) {
    free(c->t);
    free(c->n);
    free(c);
    return NULL;
  }
  memcpy(c->t, g->t, g->nt * sizeof *c->t);
  memcpy(c->n, g->n, g->nn * sizeof *c->n);
  for (uint32_t i = 0; i < c->nt; i++)
    if (g->t[i].data) {
      size_t bytes = (size_t)gr_shape_count(g->t[i].shape) * sizeof(float);
      c->t[i].data = malloc(bytes);
      if (c->t[i].data)
        memcpy(c->t[i].data, g->t[i].data, bytes);
    }
  return c;
}

aps_status gr_graph_status(const gr_graph *g) { return g->status; }
const char *gr_graph_error(const gr_graph *g) { return g->error; }

void gr_scope_push(gr_graph *g, const char *name) {
  size_t n = strlen(g->scope);
  if (g->scope_depth < 32)
    g->scope_len[g->scope_depth] = (uint16_t)n;
  g->scope_depth++; /* deeper than 32 levels: names still nest, pops beyond 32 clear all */
  bounded_printf(g->scope + n, sizeof g->scope - n, "%s%s", n ? "." : "", name);
}

void gr_scope_pop(gr_graph *g) {
  if (g->scope_depth == 0)
    return;
  g->scope_depth--;
  g->scope[g->scope_depth < 32 ? g->scope_len[g->scope_depth] : 0] = 0;
}

gr_tensor gr_error(gr_graph *g, const char *op, const char *fmt, ...) {
  if (g->status != APS_OK)
    return 0;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bounded_printf(g->error, sizeof g->error, "%s%s%s: %s", g->scope, g->scope[0] ? ": " : "", op, msg);
  g->status = APS_ERR_INVALID_ARG;
  aps_fail(g->status, "%s", g->error);
  return 0;
}

gr_tensor_info *gr_t(const gr_graph *g, gr_tensor t) { return t && t < g->nt ? &g->t[t] : NULL; }

int gr_ok(gr_graph *g, int n, const gr_tensor *ts) {
  if (g->status != APS_OK)
    return 0;
  for (int i = 0; i < n; i++)
    if (!ts[i] || ts[i] >= g->nt) {
      gr_error(g, "graph", "tensor handle %u is invalid (an earlier builder failed?)", ts[i]);
      return 0;
    }
  return 1;
}

int64_t gr_shape_count(gr_shape s) {
  int64_t n = 1;
  for (int i = 0; i < s.rank; i++)
    n *= s.d[i];
  return n;
}

gr_shape gr_shape_make(int rank, const int64_t *d) {
  gr_shape s = {0};
  s.rank = rank > GR_MAX_DIMS ? GR_MAX_DIMS : rank;
  for (int i = 0; i < s.rank; i++)
    s.d[i] = d[i];
  return s;
}

const char *gr_shape_str(gr_shape s, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < s.rank && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%" PRId64, i ? ", " : "", s.d[i]);
  if (used < size)
    snprintf(buf + used, size - used, "]");
  return buf;
}

void gr_shape4(gr_shape s, int64_t out[4]) {
  for (int i = 0; i < 4; i++)
    out[i] = 1;
  for (int i = 0; i < s.rank; i++)
    out[4 - s.rank + i] = s.d[i];
}

void gr_bcast_strides(gr_shape s, gr_shape out, int64_t st[4]) {
  int64_t d[4], o[4];
  gr_shape4(s, d);
  gr_shape4(out, o);
  int64_t acc = 1;
  for (int i = 3; i >= 0; i--) {
    st[i] = d[i] == 1 && o[i] != 1 ? 0 : acc;
    acc *= d[i];
  }
}

int gr_broadcast_shape(gr_shape a, gr_shape b, gr_shape *out) {
  int r = a.rank > b.rank ? a.rank : b.rank;
  gr_shape o = {.rank = r};
  for (int i = 0; i < r; i++) {
    int64_t x = i < r - a.rank ? 1 : a.d[i - (r - a.rank)];
    int64_t y = i < r - b.rank ? 1 : b.d[i - (r - b.rank)];
    if (x != y && x != 1 && y != 1)
      return 0;
    o.d[i] = x == 1 ? y : x;
  }
  *out = o;
  return 1;
}

static int valid_shape(gr_shape s) {
  if (s.rank < 1 || s.rank > GR_MAX_DIMS)
    return 0;
  for (int i = 0; i < s.rank; i++)
    if (s.d[i] < 1 || s.d[i] > (1ll << 31))
      return 0;
  return gr_shape_count(s) <= (1ll << 34);
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap)
    return 1;
  uint32_t c = *cap * 2 > need ? *cap * 2 : need;
  void *q = realloc(*p, c * elem);
  if (!q)
    return 0;
  memset((char *)q + *cap * elem, 0, (c - *cap) * elem);
  *p = q;
  *cap = c;
  return 1;
}

/* Parameters take the scope as a prefix ("down1.res0.conv1.weight"). */
static void full_name(const gr_graph *g, gr_op kind, const char *name, char *out, size_t size) {
  int scoped = kind == GR_OP_PARAM && g->scope[0];
  bounded_printf(out, size, "%s%s%s", scoped ? g->scope : "", scoped ? "." : "", name);
}

gr_tensor gr_tensor_new(gr_graph *g, gr_op kind, const char *name, gr_shape s) {
  if (g->status != APS_OK)
    return 0;
  char buf[64];
  if (!valid_shape(s))
    return gr_error(g, gr_op_name(kind), "invalid shape %s for '%s'", gr_shape_str(s, buf, sizeof buf),
                    name ? name : "");
  if (!grow((void **)&g->t, &g->cap_t, g->nt + 1, sizeof *g->t))
    return gr_error(g, gr_op_name(kind), "out of host memory");
  gr_tensor id = g->nt++;
  gr_tensor_info *t = &g->t[id];
  memset(t, 0, sizeof *t);
  t->shape = s;
  t->kind = kind;
  if (name && *name)
    full_name(g, kind, name, t->name, sizeof t->name);
  else
    snprintf(t->name, sizeof t->name, "t%u", id);
  return id;
}

gr_tensor gr_node_add(gr_graph *g, gr_op op, const char *label, int n_in, const gr_tensor *in, gr_shape out,
                      gr_node **node_out) {
  if (!gr_ok(g, n_in, in))
    return 0;
  if (!grow((void **)&g->n, &g->cap_n, g->nn + 1, sizeof *g->n))
    return gr_error(g, gr_op_name(op), "out of host memory");
  char name[GR_MAX_NAME];
  bounded_printf(name, sizeof name, "%s%s%s#%u", g->scope, g->scope[0] ? "." : "", label ? label : gr_op_name(op), g->nn);
  gr_tensor t = gr_tensor_new(g, op, name, out);
  if (!t)
    return 0;
  gr_node *n = &g->n[g->nn];
  memset(n, 0, sizeof *n);
  n->op = op;
  n->n_inputs = n_in;
  for (int i = 0; i < n_in; i++)
    n->inputs[i] = in[i];
  n->output = t;
  bounded_printf(n->name, sizeof n->name, "%s", name);
  g->t[t].node = ++g->nn;
  if (node_out)
    *node_out = n;
  return t;
}

static int name_taken(const gr_graph *g, const char *name) {
  for (uint32_t i = 1; i < g->nt; i++)
    if ((g->t[i].kind == GR_OP_INPUT || g->t[i].kind == GR_OP_PARAM || g->t[i].output) && !strcmp(g->t[i].name, name))
      return 1;
  return 0;
}

static gr_tensor named_leaf(gr_graph *g, gr_op kind, const char *name, gr_shape s) {
  if (g->status != APS_OK)
    return 0;
  if (!name || !*name)
    return gr_error(g, gr_op_name(kind), "needs a name");
  char full[GR_MAX_NAME];
  full_name(g, kind, name, full, sizeof full);
  if (name_taken(g, full))
    return gr_error(g, gr_op_name(kind), "the name '%s' is used twice", full);
  return gr_tensor_new(g, kind, name, s);
}

gr_tensor gr_input(gr_graph *g, const char *name, gr_shape s) { return named_leaf(g, GR_OP_INPUT, name, s); }
gr_tensor gr_param(gr_graph *g, const char *name, gr_shape s) { return named_leaf(g, GR_OP_PARAM, name, s); }

gr_tensor gr_const(gr_graph *g, const char *name, gr_shape s, const float *data) {
  gr_tensor t = gr_tensor_new(g, GR_OP_CONST, name, s);
  if (!t)
    return 0;
  size_t bytes = (size_t)gr_shape_count(s) * sizeof(float);
  g->t[t].data = malloc(bytes);
  if (!g->t[t].data)
    return gr_error(g, "const", "out of host memory for %zu bytes", bytes);
  memcpy(g->t[t].data, data, bytes);
  return t;
}

gr_tensor gr_const_scalar(gr_graph *g, float value) { return gr_const(g, NULL, GR_SHAPE(1), &value); }

void gr_output(gr_graph *g, gr_tensor t, const char *name) {
  if (!gr_ok(g, 1, &t))
    return;
  if (!name || !*name || name_taken(g, name)) {
    gr_error(g, "output", "output name '%s' is empty or used twice", name ? name : "");
    return;
  }
  g->t[t].output = 1;
  if (g->t[t].kind != GR_OP_INPUT && g->t[t].kind != GR_OP_PARAM)
    bounded_printf(g->t[t].name, sizeof g->t[t].name, "%s", name);
}

gr_shape gr_tensor_shape(const gr_graph *g, gr_tensor t) {
  const gr_tensor_info *i = gr_t(g, t);
  return i ? i->shape : (gr_shape){0};
}

const char *gr_tensor_name(const gr_graph *g, gr_tensor t) {
  const gr_tensor_info *i = gr_t(g, t);
  return i ? i->name : "";
}

void gr_graph_get_stats(const gr_graph *g, gr_stats *out) {
  memset(out, 0, sizeof *out);
  out->tensors = g->nt - 1;
  out->nodes = g->nn;
  for (uint32_t i = 1; i < g->nt; i++)
    if (g->t[i].kind == GR_OP_PARAM) {
      out->params++;
      out->param_floats += gr_shape_count(g->t[i].shape);
    }
  /* FLOPs of the nodes some output or assignment needs (as the devices run them) */
  uint8_t *live = calloc(g->nt ? g->nt : 1, 1);
  for (uint32_t t = 1; live && t < g->nt; t++)
    live[t] = (uint8_t)g->t[t].output;
  for (uint32_t i = g->nn; live && i-- > 0;) {
    const gr_node *n = &g->n[i];
    if (!live[n->output] && n->op != GR_OP_ASSIGN)
      continue;
    for (int k = 0; k < n->n_inputs; k++)
      live[n->inputs[k]] = 1;
    gr_shape so = g->t[n->output].shape;
    if (n->op == GR_OP_CONV2D) { /* per output value: (C / groups) · KH · KW */
      gr_shape sw = g->t[n->inputs[1]].shape;
      out->flops += 2 * gr_shape_count(so) * sw.d[1] * sw.d[2] * sw.d[3];
    } else if (n->op == GR_OP_CONV2D_WGRAD && !n->ia[8]) { /* stage 0: per x value, one per output channel and tap */
      gr_shape sx = g->t[n->inputs[0]].shape, sy = g->t[n->inputs[1]].shape;
      out->flops += 2 * gr_shape_count(sy) * sx.d[1] / n->ia[3] * n->ia[4] * n->ia[5];
    } else if (n->op == GR_OP_MATMUL) { /* per output value: the inner dimension */
      gr_shape sa = g->t[n->inputs[0]].shape;
      out->flops += 2 * gr_shape_count(so) * sa.d[sa.rank - 1];
    }
  }
  free(live);
}

gr_tensor gr_param_at(const gr_graph *g, uint32_t index) {
  for (uint32_t i = 1; i < g->nt; i++)
    if (g->t[i].kind == GR_OP_PARAM && index-- == 0)
      return i;
  return 0;
}

gr_tensor gr_input_at(const gr_graph *g, uint32_t index) {
  for (uint32_t i = 1; i < g->nt; i++)
    if (g->t[i].kind == GR_OP_INPUT && index-- == 0)
      return i;
  return 0;
}

int gr_tensor_is_state(const gr_graph *g, gr_tensor t) {
  const gr_tensor_info *i = gr_t(g, t);
  return i && i->zero_init;
}

gr_tensor gr_find(const gr_graph *g, const char *name) {
  for (uint32_t i = 1; i < g->nt; i++)
    if ((g->t[i].kind == GR_OP_INPUT || g->t[i].kind == GR_OP_PARAM || g->t[i].output) && !strcmp(g->t[i].name, name))
      return i;
  return 0;
}
