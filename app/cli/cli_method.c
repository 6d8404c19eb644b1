/* --method and DPS's settings into a posterior's description (cli_method.h). */
#include "cli_method.h"

#include <stdio.h>
#include <stdlib.h>
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
  if (m->temperature) {
    char *end = NULL;
    t[0] = t[1] = strtof(m->temperature, &end);
    int ok = end != m->temperature;
    if (ok && *end == ',') {
      const char *second = end + 1;
      t[1] = strtof(second, &end);
      ok = end != second;
    }
    if (!ok || *end || !(t[0] > 0 && t[0] <= APS_TEMPERATURE_MAX && t[1] > 0 && t[1] <= APS_TEMPERATURE_MAX)) {
      fprintf(stderr, "aps %s: --temperature '%s': expected T or T_DAMAGED,T_ELSEWHERE, each above 0 and at most %g\n",
              command, m->temperature, APS_TEMPERATURE_MAX);
      return 2;
    }
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
