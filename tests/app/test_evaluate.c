/* The evaluation loop (evaluate.h) on a tiny untrained flow and a few synthetic images:
 * every figure in its range, the measurement's own figures against a direct computation,
 * seeds reproduce. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "evaluate.h"
#include "metrics.h"
#include "tiny_flow.h"

enum { S = 16, D = S * S, N = 3 };

TEST_CASE(evaluate_tiny) {
  char dir[64];
  const char *path = tiny_join(tiny_tmpdir(dir), "flow.safetensors");
  REQUIRE_OK(tiny_flow_write(path, 1, S, "inpaint:box=4-8,noise=0.05", 0.05f));
  aps_posterior *p = NULL;
  REQUIRE_OK(aps_posterior_open(&(aps_posterior_desc){.model = path, .device = "cpu", .max_batch = 4, .quiet = 1}, &p));
  float images[N * D];
  for (int n = 0; n < N; n++)
    for (int i = 0; i < D; i++)
      images[n * D + i] = 0.9f * sinf(0.3f * (n + 1) * (i / S) + 0.2f * (i % S));
  aps_eval_result r, r2;
  REQUIRE_OK(aps_evaluate(p, images, N, &(aps_eval_desc){.k = 4, .seed = 3}, &r));
  CHECK(r.images == N && r.k == 4, "images %d k %d", r.images, r.k);
  CHECK(isfinite(r.psnr_sample) && isfinite(r.psnr_mean) && r.psnr_mean > 0, "psnr %g %g", r.psnr_sample, r.psnr_mean);
  CHECK(r.ssim_sample > -1 && r.ssim_sample <= 1 && r.ssim_mean > -1 && r.ssim_mean <= 1, "ssim %g %g", r.ssim_sample,
        r.ssim_mean);
  CHECK(r.coverage90 >= 0 && r.coverage90 <= 1 && r.data_consistency > 0, "coverage %g, data consistency %g",
        r.coverage90, r.data_consistency);
  CHECK(r.std_inside > 0 && r.std_outside > 0, "std inside %g outside %g", r.std_inside, r.std_outside);
  CHECK(r.ms_per_sample > 0, "ms per sample %g", r.ms_per_sample);
  /* the measurement's own PSNR: the last image set is the last evaluated, with its seed */
  double psnr = 0, ssim = 0;
  float grid[D];
  for (int n = 0; n < N; n++) {
    REQUIRE_OK(aps_posterior_set_clean(p, images + n * D, NULL, aps_op_seed(3, (uint64_t)n)));
    REQUIRE_OK(aps_posterior_get_measurement(p, grid));
    psnr += aps_psnr(grid, images + n * D, D) / N;
    ssim += aps_ssim(grid, images + n * D, 1, S, S) / N;
  }
  CHECK(fabs(psnr - r.psnr_measurement) < 1e-9 && fabs(ssim - r.ssim_measurement) < 1e-9,
        "the measurement's PSNR %g (by hand %g), SSIM %g (%g)", r.psnr_measurement, psnr, r.ssim_measurement, ssim);
  REQUIRE_OK(aps_evaluate(p, images, N, &(aps_eval_desc){.k = 4, .seed = 3}, &r2));
  CHECK(r.psnr_sample == r2.psnr_sample && r.coverage90 == r2.coverage90 && r.std_inside == r2.std_inside,
        "a seed reproduces its figures");
  /* one 6x6 box in every image: the coverage is the regions' coverages weighted by their sizes */
  REQUIRE_OK(aps_evaluate(p, images, N, &(aps_eval_desc){.spec = "inpaint:box=6,noise=0.05", .k = 4, .seed = 2}, &r2));
  double whole = (r2.coverage90_inside * 36 + r2.coverage90_outside * (D - 36)) / D;
  CHECK(fabs(whole - r2.coverage90) < 1e-9 && r2.coverage90_inside >= 0 && r2.coverage90_outside <= 1,
        "coverage %g, inside %g, outside %g: weighted %g", r2.coverage90, r2.coverage90_inside, r2.coverage90_outside,
        whole);
  /* denoise: no damaged region */
  REQUIRE_OK(aps_evaluate(p, images, N, &(aps_eval_desc){.spec = "denoise,noise=0.1", .k = 3, .seed = 1}, &r2));
  CHECK(isnan(r2.std_inside) && r2.std_outside > 0, "denoise: std inside %g (none), outside %g", r2.std_inside,
        r2.std_outside);
  CHECK(isnan(r2.coverage90_inside) && r2.coverage90_outside == r2.coverage90, "denoise: coverage inside %g (none), "
        "outside %g, all %g", r2.coverage90_inside, r2.coverage90_outside, r2.coverage90);
  CHECK(aps_evaluate(p, images, N, &(aps_eval_desc){.k = 1}, &r2) != APS_OK, "k = 1 refused");
  CHECK(aps_evaluate(p, images, N, &(aps_eval_desc){.spec = "sr:2"}, &r2) != APS_OK &&
            strstr(aps_last_error(), "super-resolution"), "another class refused: %s", aps_last_error());
  aps_posterior_close(p);
  unlink(path);
  rmdir(dir);
}
