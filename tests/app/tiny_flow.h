/* Flow model files for the posterior tests, written as `aps distill` writes them but with
 * an untrained glow whose parameters are nudged off their initial values (so that the
 * condition reaches the samples). */
#ifndef APS_TEST_TINY_FLOW_H
#define APS_TEST_TINY_FLOW_H

#include "aps_status.h"
#include "flow.h"

/* A glow for channels × size × size images (levels 2, steps 1, hidden 8, cond_hidden 4),
 * trained, its metadata says, on the operator family spec; spec NULL leaves "aps.op"
 * out. */
aps_status tiny_flow_write(const char *path, int channels, int size, const char *spec, float perturb);
/* The tiny glow's config, and a file of any config written the same way. */
aps_flow_config tiny_flow_config(int channels, int size);
aps_status tiny_flow_write_config(const char *path, const aps_flow_config *c, const char *spec, float perturb);

/* A fresh folder under /tmp ("" on failure) and a path in it. */
const char *tiny_tmpdir(char buf[64]);
const char *tiny_join(const char *dir, const char *name);

#endif
