/* The fully connected conditional RealNVP of flow.h (the paper's architecture, for vectors):
 * `steps` blocks of [ActNorm → coupling on concat(x_a, c) → fixed permutation], the
 * permutation of block b being the order reversal composed with a random permutation. */
#include <stdio.h>
#include <stdlib.h>

#include "flow.h"

static gr_tensor block(aps_flow_ctx *f, const aps_flow_config *c, int b, gr_tensor h, gr_tensor cond,
                       const int32_t *perm) {
  char name[16];
  snprintf(name, sizeof name, "b%d", b);
  aps_flow_enter(f, name);
  if (!f->inverse) {
    h = aps_flow_actnorm(f, "actnorm", h);
    h = aps_flow_coupling(f, "coupling", h, cond, c->hidden, c->bound);
    h = aps_flow_permute(f, h, perm, c->dim);
  } else {
    h = aps_flow_permute(f, h, perm, c->dim);
    h = aps_flow_coupling(f, "coupling", h, cond, c->hidden, c->bound);
    h = aps_flow_actnorm(f, "actnorm", h);
  }
  aps_flow_leave(f);
  return h;
}

gr_tensor aps_flow_realnvp(aps_flow_ctx *f, const aps_flow_config *c, gr_tensor in, gr_tensor cond) {
  int32_t *perm = malloc(sizeof(int32_t) * (size_t)c->dim);
  if (!perm)
    return 0;
  char key[32];
  gr_tensor h = in;
  for (int i = 0; i < c->steps; i++) {
    int b = f->inverse ? c->steps - 1 - i : i;
    snprintf(key, sizeof key, "flow.b%d.perm", b);
    aps_flow_random_perm(f->seed, key, c->dim, perm);
    for (int k = 0; k < c->dim; k++) /* reversal, then the random permutation */
      perm[k] = c->dim - 1 - perm[k];
    h = block(f, c, b, h, cond, perm);
  }
  free(perm);
  return h;
}
