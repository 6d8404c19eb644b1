/* Flow model files for the posterior tests (tiny_flow.h). */
#include "tiny_flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "operators.h"
#include "rng.h"

aps_flow_config tiny_flow_config(int channels, int size) {
  aps_flow_config c = aps_flow_config_glow(channels, size, channels + 2);
  c.levels = 2, c.steps = 1, c.hidden = 8, c.cond_hidden = 4, c.seed = 3;
  return c;
}

aps_status tiny_flow_write(const char *path, int channels, int size, const char *spec, float perturb) {
  aps_flow_config c = tiny_flow_config(channels, size);
  return tiny_flow_write_config(path, &c, spec, perturb);
}

aps_status tiny_flow_write_config(const char *path, const aps_flow_config *config, const char *spec, float perturb) {
  aps_flow_config c = *config;
  gr_graph *g = NULL;
  aps_runner *r = NULL;
  APS_TRY(aps_flow_sample_graph(&c, 1, &g));
  uint64_t rng = 5;
  aps_status s = aps_runner_create(g, &(aps_runner_desc){.device = "cpu", .quiet = 1}, &r);
  if (s == APS_OK)
    s = aps_flow_init_params(g, &c, r, &rng);
  gr_tensor t;
  for (uint32_t i = 0; s == APS_OK && (t = gr_param_at(g, i)); i++) {
    int64_t n = gr_shape_count(gr_tensor_shape(g, t));
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v)
      s = APS_ERR_OUT_OF_MEMORY;
    if (s == APS_OK)
      s = aps_runner_get(r, gr_tensor_name(g, t), v, n);
    for (int64_t k = 0; s == APS_OK && k < n; k++)
      v[k] += perturb * aps_rng_normal(&rng);
    if (s == APS_OK)
      s = aps_runner_set(r, gr_tensor_name(g, t), v, n);
    free(v);
  }
  char flow_buf[256], op_buf[APS_OP_SPEC_MAX];
  gr_st_meta meta[APS_FLOW_META + 2];
  aps_flow_config_meta(&c, flow_buf, meta);
  int n_meta = APS_FLOW_META;
  meta[n_meta++] = (gr_st_meta){"aps.prior", "prior-fmnist32.safetensors"};
  aps_op_spec op;
  if (s == APS_OK && spec && (s = aps_op_spec_parse(spec, &op)) == APS_OK)
    s = aps_op_spec_to_meta(&op, op_buf, &meta[n_meta++]);
  if (s == APS_OK)
    s = aps_runner_save(r, path, APS_SAVE_PARAMS, meta, (uint32_t)n_meta);
  aps_runner_destroy(r);
  gr_graph_destroy(g);
  return s;
}

const char *tiny_tmpdir(char buf[64]) {
  snprintf(buf, 64, "/tmp/aps-test-posterior-XXXXXX");
  return mkdtemp(buf) ? buf : "";
}

const char *tiny_join(const char *dir, const char *name) {
  static _Thread_local char bufs[4][512];
  static _Thread_local int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 512, "%s/%s", dir, name);
  return b;
}
