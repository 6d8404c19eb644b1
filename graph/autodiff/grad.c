/* Reverse-mode autodiff on the IR: from the loss back to the first node, each node that
 * depends on a tensor differentiated against gets the adjoints of its inputs from its op's
 * vector-Jacobian product (the op table's vjp column, vjp_*.c), summed over its readers. */
#include <stdlib.h>

#include "vjp.h"

aps_status gr_grad(gr_graph *g, gr_tensor loss, uint32_t n_wrt, const gr_tensor *wrt, gr_tensor *grads) {
  for (uint32_t i = 0; i < n_wrt; i++)
    grads[i] = 0;
  if (!gr_ok(g, 1, &loss) || !gr_ok(g, (int)n_wrt, wrt))
    return g->status;
  uint32_t nt = g->nt, nn = g->nn;
  uint8_t *dep = calloc(nt, 1);
  gr_tensor *adj = calloc(nt, sizeof *adj);
  if (!dep || !adj) {
    free(dep);
    free(adj);
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory differentiating");
  }
  /* Which tensors depend on something we differentiate against. */
  for (uint32_t i = 0; i < n_wrt; i++)
    dep[wrt[i]] = 1;
  for (uint32_t i = 0; i < nn; i++)
    for (int k = 0; k < g->n[i].n_inputs; k++)
      dep[g->n[i].output] |= dep[g->n[i].inputs[k]];
  adj[loss] = gr_vjp_filled(g, SHAPE(loss), 1.0f);
  gr_scope_push(g, "grad");
  aps_status status = APS_OK;
  for (uint32_t i = nn; i-- > 0 && g->status == APS_OK;) {
    gr_node n = g->n[i]; /* a copy: building below may move the node array */
    if (!adj[n.output] || !dep[n.output])
      continue;
    gr_tensor d[GR_MAX_INPUTS] = {0};
    gr_vjp_fn vjp = gr_op_impls[n.op].vjp;
    if (!vjp || !vjp(g, &n, adj[n.output], d)) {
      status = aps_fail(APS_ERR_UNSUPPORTED, "gradient of node %s: op %s has no vector-Jacobian product yet",
                        n.name, n.op == GR_OP_UNARY   ? gr_unary_name((gr_unary)n.ia[0])
                                : n.op == GR_OP_BINARY ? gr_binary_name((gr_binary)n.ia[0])
                                                       : gr_op_name(n.op));
      break;
    }
    for (int k = 0; k < n.n_inputs; k++) {
      uint32_t x = n.inputs[k];
      if (d[k] && dep[x])
        adj[x] = adj[x] ? gr_add(g, adj[x], d[k]) : d[k];
    }
  }
  gr_scope_pop(g);
  if (status == APS_OK && g->status != APS_OK)
    status = aps_fail(g->status, "building gradients: %s", g->error);
  for (uint32_t i = 0; i < n_wrt && status == APS_OK; i++)
    grads[i] = adj[wrt[i]];
  free(dep);
  free(adj);
  return status;
}
