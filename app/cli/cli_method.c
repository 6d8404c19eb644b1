/* --method and DPS's settings into a posterior's description (cli_method.h). */
#include "cli_method.h"

#include <stdio.h>
#include <string.h>

int cli_method_desc(const char *command, const cli_method *m, const char *op, aps_posterior_desc *d) {
  int dps = !strcmp(m->method, "dps");
  if (!dps && strcmp(m->method, "flow")) {
    fprintf(stderr, "aps %s: --method '%s': expected flow or dps\n", command, m->method);
    return 2;
  }
  if (!dps && (m->steps || m->zeta != 0.0f)) {
    fprintf(stderr, "aps %s: --steps and --zeta are DPS's settings (--method dps)\n", command);
    return 2;
  }
  if (dps && m->temperature) {
    fprintf(stderr, "aps %s: --temperature is a flow's setting, not DPS's\n", command);
    return 2;
  }
  float t[2] = {0, 0};
  if (m->temperature && aps_temperature_parse(m->temperature, t) != APS_OK) {
    fprintf(stderr, "aps %s: --%s\n", command, aps_last_error());
    return 2;
  }
  if (strcmp(m->rule, "em") && strcmp(m->rule, "ddim")) {
    fprintf(stderr, "aps %s: --rule '%s': expected em or ddim\n", command, m->rule);
    return 2;
  }
  if (dps && !op) {
    fprintf(stderr, "aps %s: --method dps needs --op (the family of the measurements; the prior knows none)\n",
            command);
    return 2;
  }
  d->dps = dps;
  d->temperature[0] = t[0], d->temperature[1] = t[1];
  d->family = dps ? op : NULL;
  d->dps_settings = (aps_posterior_dps){.steps = m->steps, .zeta = m->zeta, .ddim = !strcmp(m->rule, "ddim"),
                                        .eta = m->eta};
  return 0;
}

aps_status cli_fashion_mnist_for(const char *model, const aps_posterior_info *in, int train, const char *op,
                                 aps_dataset **ds, char family[APS_OP_SPEC_MAX]) {
  *ds = NULL;
  snprintf(family, APS_OP_SPEC_MAX, "%s", in->family);
  aps_op_spec spec;
  if (op) {
    APS_TRY(aps_op_spec_parse(op, &spec));
    APS_TRY(aps_op_spec_format(&spec, family, APS_OP_SPEC_MAX));
  }
  APS_TRY(aps_dataset_load_fashion_mnist(NULL, train, ds));
  if (aps_dataset_channels(*ds) == in->channels && aps_dataset_height(*ds) == in->height &&
      aps_dataset_width(*ds) == in->width)
    return APS_OK;
  aps_status s = aps_fail(APS_ERR_INVALID_ARG, "%s is a flow for %dx%dx%d images (c x h x w); Fashion-MNIST's are "
                          "%dx%dx%d", model, in->channels, in->height, in->width, aps_dataset_channels(*ds),
                          aps_dataset_height(*ds), aps_dataset_width(*ds));
  aps_dataset_free(*ds);
  *ds = NULL;
  return s;
}
