/* Loading a graph's parameters from a safetensors file into a plan or the CPU interpreter.
 * Everything is checked before anything is set, so a failed load leaves the target as it
 * was. */
#include <inttypes.h>
#include <math.h>

#include "graph_internal.h"
#include "safetensors.h"

typedef aps_status (*set_fn)(void *target, const char *name, const float *data, int64_t count);

static aps_status set_plan(void *p, const char *name, const float *data, int64_t count) {
  return gr_plan_set(p, name, data, count);
}
static aps_status set_cpu(void *c, const char *name, const float *data, int64_t count) {
  return gr_cpu_set(c, name, data, count);
}

/* Parameter t: present, the graph's shape, finite. */
static aps_status check_param(const gr_graph *g, gr_tensor t, const gr_st *st) {
  const char *path = gr_st_path(st), *name = gr_tensor_name(g, t);
  gr_shape want = gr_tensor_shape(g, t), have = {0};
  char a[80], b[80];
  if (gr_st_find(st, name) < 0)
    return aps_fail(APS_ERR_FORMAT, "%s: parameter '%s' %s is missing", path, name, gr_shape_str(want, a, sizeof a));
  const float *d = NULL;
  APS_TRY(gr_st_get_f32(st, name, &have.rank, have.d, &d));
  int same = have.rank == want.rank;
  for (int k = 0; same && k < want.rank; k++)
    same = have.d[k] == want.d[k];
  if (!same)
    return aps_fail(APS_ERR_FORMAT, "%s: parameter '%s' has shape %s in the graph but %s in the file", path, name,
                    gr_shape_str(want, a, sizeof a), gr_shape_str(have, b, sizeof b));
  int64_t count = gr_shape_count(want);
  for (int64_t k = 0; k < count; k++)
    if (!isfinite(d[k]))
      return aps_fail(APS_ERR_FORMAT, "%s: parameter '%s' holds %s at element %" PRId64, path, name,
                      isnan(d[k]) ? "NaN" : d[k] > 0 ? "+Inf" : "-Inf", k);
  return APS_OK;
}

static aps_status load(void *target, set_fn set, const gr_graph *g, const gr_st *st) {
  if (!target || !g || !st)
    return aps_fail(APS_ERR_INVALID_ARG, "loading parameters: NULL %s", !target ? "target" : !g ? "graph" : "file");
  APS_TRY(gr_graph_status(g));
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g, i)); i++)
    APS_TRY(check_param(g, t, st));
  for (uint32_t i = 0; (t = gr_param_at(g, i)); i++) {
    const char *name = gr_tensor_name(g, t);
    const float *d = NULL;
    APS_TRY(gr_st_get_f32(st, name, NULL, NULL, &d));
    aps_status s = set(target, name, d, gr_shape_count(gr_tensor_shape(g, t)));
    if (s != APS_OK)
      return aps_fail_context(s, "%s: ", gr_st_path(st));
  }
  return APS_OK;
}

aps_status gr_st_check_params(const gr_graph *g, const gr_st *st) {
  if (!g || !st)
    return aps_fail(APS_ERR_INVALID_ARG, "checking parameters: NULL %s", !g ? "graph" : "file");
  APS_TRY(gr_graph_status(g));
  gr_tensor t;
  for (uint32_t i = 0; (t = gr_param_at(g, i)); i++)
    APS_TRY(check_param(g, t, st));
  return APS_OK;
}

aps_status gr_plan_load(gr_plan *p, const gr_st *st) { return load(p, set_plan, gr_plan_graph(p), st); }
aps_status gr_cpu_load(gr_cpu *c, const gr_st *st) { return load(c, set_cpu, gr_cpu_graph(c), st); }
