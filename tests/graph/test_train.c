/* Training machinery: the Adam/AdamW step against PyTorch's update written out in double,
 * and a small conv net that learns on the device. */
#include <math.h>
#include <stdlib.h>

#include "graph_check.h"
#include "optim.h"

rt_device *graph_tests_device(void);

/* `steps` Adam steps at rate lr on the CPU reference and on the device. */
static void adam_steps(gr_cpu *c, gr_plan *pl, float lr, int steps) {
  for (int t = 1; t <= steps; t++) {
    float tf = (float)t;
    REQUIRE_OK(gr_cpu_set(c, "optim.lr", &lr, 1));
    REQUIRE_OK(gr_cpu_set(c, "optim.step", &tf, 1));
    REQUIRE_OK(gr_cpu_run(c));
    REQUIRE_OK(gr_plan_set(pl, "optim.lr", &lr, 1));
    REQUIRE_OK(gr_plan_set(pl, "optim.step", &tf, 1));
    REQUIRE_OK(gr_plan_run(pl));
  }
}

/* loss = Σ (p ∘ x - y)²; three steps of AdamW with clipping and EMA, on the CPU reference
 * and on the device, against the update computed here. */
TEST_CASE(adam_formula) {
  enum { N = 5, STEPS = 3 };
  gr_graph *g = gr_graph_create();
  gr_tensor p = gr_param(g, "p", GR_SHAPE(N)), x = gr_input(g, "x", GR_SHAPE(N)), y = gr_input(g, "y", GR_SHAPE(N));
  gr_tensor loss = gr_reduce_op(g, GR_SUM, gr_unary_op(g, GR_SQUARE, gr_sub(g, gr_mul(g, p, x), y)), 1u);
  gr_output(g, loss, "loss");
  gr_adam_desc d = {.beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-3f, .weight_decay = 0.1f, .max_grad_norm = 1.0f,
                    .ema_decay = 0.5f};
  gr_adam_outputs ao;
  REQUIRE_OK(gr_adam(g, loss, &d, &ao));
  CHECK(ao.params == 1, "one parameter trained (%u)", ao.params);
  gr_output(g, ao.grad_norm, "grad_norm");
  float p0[N] = {0.5f, -1.0f, 2.0f, 0.0f, 1.5f}, xv[N] = {1, 2, -1, 0.5f, 3}, yv[N] = {1, 0, 1, -1, 2};
  /* The reference update, in double. */
  double pr[STEPS + 1][N], m[N] = {0}, v[N] = {0}, ema[N] = {0}, lr = 0.05;
  for (int i = 0; i < N; i++)
    pr[0][i] = p0[i];
  for (int t = 1; t <= STEPS; t++) {
    double grad[N], norm = 0;
    for (int i = 0; i < N; i++) {
      grad[i] = 2 * (pr[t - 1][i] * xv[i] - yv[i]) * xv[i];
      norm += grad[i] * grad[i];
    }
    double clip = fmin(1.0, d.max_grad_norm / (sqrt(norm) + 1e-6));
    double c1 = 1 - pow(d.beta1, t), c2 = sqrt(1 - pow(d.beta2, t)), de = fmin(d.ema_decay, (t - 1.0) / (t + 9.0));
    for (int i = 0; i < N; i++) {
      double gi = grad[i] * clip;
      m[i] = d.beta1 * m[i] + (1 - d.beta1) * gi;
      v[i] = d.beta2 * v[i] + (1 - d.beta2) * gi * gi;
      pr[t][i] = pr[t - 1][i] * (1 - lr * d.weight_decay) - lr / c1 * m[i] / (sqrt(v[i]) / c2 + d.eps);
      ema[i] = de * ema[i] + (1 - de) * pr[t][i];
    }
  }
  /* The CPU reference... */
  gr_cpu *c;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_cpu_set(c, "p", p0, N));
  REQUIRE_OK(gr_cpu_set(c, "x", xv, N));
  REQUIRE_OK(gr_cpu_set(c, "y", yv, N));
  /* ...and the device. */
  gr_plan *pl;
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &pl));
  REQUIRE_OK(gr_plan_set(pl, "p", p0, N));
  REQUIRE_OK(gr_plan_set(pl, "x", xv, N));
  REQUIRE_OK(gr_plan_set(pl, "y", yv, N));
  adam_steps(c, pl, (float)lr, STEPS);
  const float *pc = gr_cpu_values(c, p), *ec = gr_cpu_values(c, gr_find(g, "ema.p"));
  float pv[N], ev[N];
  REQUIRE_OK(gr_plan_get(pl, "p", pv, N));
  REQUIRE_OK(gr_plan_get(pl, "ema.p", ev, N));
  for (int i = 0; i < N; i++) {
    CHECK(fabs(pc[i] - pr[STEPS][i]) < 1e-5, "CPU p[%d] = %g, reference %g", i, pc[i], pr[STEPS][i]);
    CHECK(fabs(pv[i] - pr[STEPS][i]) < 1e-5, "device p[%d] = %g, reference %g", i, pv[i], pr[STEPS][i]);
    CHECK(fabs(ec[i] - ema[i]) < 1e-5 && fabs(ev[i] - ema[i]) < 1e-5, "EMA[%d] = %g / %g, reference %g", i, ec[i],
          ev[i], ema[i]);
  }
  gr_plan_destroy(pl);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

/* trained_prefix: "net.head." moves; "net.body.w" is held (unchanged, its EMA a copy of
 * it, so a save of the averages keeps it); "prior.w" is frozen (no EMA at all). On the
 * CPU reference and the device. */
TEST_CASE(adam_trained_prefix) {
  enum { N = 4 };
  gr_graph *g = gr_graph_create();
  gr_tensor h = gr_param(g, "net.head.w", GR_SHAPE(N)), b = gr_param(g, "net.body.w", GR_SHAPE(N));
  gr_tensor f = gr_param(g, "prior.w", GR_SHAPE(N)), x = gr_input(g, "x", GR_SHAPE(N));
  gr_tensor loss = gr_reduce_op(g, GR_SUM, gr_unary_op(g, GR_SQUARE, gr_sub(g, gr_mul(g, gr_mul(g, h, b), f), x)), 1u);
  gr_output(g, loss, "loss");
  gr_adam_outputs ao;
  REQUIRE_OK(gr_adam(g, loss, &(gr_adam_desc){.ema_decay = 0.9f, .frozen_prefix = "prior.",
                                              .trained_prefix = "net.head."}, &ao));
  CHECK(ao.params == 1 && ao.held == 1, "trained %u, held %u (want 1 and 1)", ao.params, ao.held);
  CHECK(gr_find(g, "ema.net.head.w") && gr_find(g, "ema.net.body.w") && !gr_find(g, "ema.prior.w") &&
            !gr_find(g, "optim.m.net.body.w"), "EMA of the trained and the held weights only; no moments for the held");
  float hv[N] = {1, 2, -1, 0.5f}, bv[N] = {0.5f, -1, 2, 1}, fv[N] = {1, 1, 2, -2}, xv[N] = {3, 0, 1, 1}, lr = 0.1f;
  gr_cpu *c;
  gr_plan *pl;
  REQUIRE_OK(gr_cpu_create(g, &c));
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &pl));
  const char *names[4] = {"net.head.w", "net.body.w", "prior.w", "x"};
  const float *vals[4] = {hv, bv, fv, xv};
  for (int i = 0; i < 4; i++) {
    REQUIRE_OK(gr_cpu_set(c, names[i], vals[i], N));
    REQUIRE_OK(gr_plan_set(pl, names[i], vals[i], N));
  }
  adam_steps(c, pl, lr, 3);
  float got[4][N];
  const char *read[4] = {"net.head.w", "net.body.w", "prior.w", "ema.net.body.w"};
  const float *want[4] = {hv, bv, fv, bv};
  for (int k = 0; k < 4; k++) {
    REQUIRE_OK(gr_plan_get(pl, read[k], got[k], N));
    const float *cv = gr_cpu_values(c, gr_find(g, read[k]));
    for (int i = 0; i < N; i++) {
      int moved = fabsf(got[k][i] - want[k][i]) > 1e-3f, moved_cpu = fabsf(cv[i] - want[k][i]) > 1e-3f;
      CHECK(moved == (k == 0) && moved_cpu == (k == 0), "%s[%d]: %g (device), %g (CPU), from %g: %s", read[k], i,
            got[k][i], cv[i], want[k][i], k == 0 ? "should move" : "should not");
    }
  }
  gr_plan_destroy(pl);
  gr_cpu_destroy(c);
  gr_graph_destroy(g);
}

TEST_CASE(schedule) {
  gr_schedule s = {.lr = 1e-3f, .warmup = 10, .total = 110};
  CHECK(fabsf(gr_schedule_lr(&s, 1) - 1e-4f) < 1e-9f && fabsf(gr_schedule_lr(&s, 10) - 1e-3f) < 1e-9f, "warm-up");
  CHECK(fabsf(gr_schedule_lr(&s, 60) - 5e-4f) < 1e-8f, "half way down the cosine (%g)", gr_schedule_lr(&s, 60));
  CHECK(gr_schedule_lr(&s, 110) < 1e-9f && gr_schedule_lr(&s, 500) < 1e-9f, "zero at the end and after");
  s.total = 0;
  CHECK(gr_schedule_lr(&s, 1000) == 1e-3f, "constant after warm-up");
}

/* A student conv net learns a fixed teacher's mapping: 1000 Adam steps, each one plan run
 * (one submit), on the device. */
TEST_CASE(train_convnet) {
  enum { N = 8, STEPS = 1000 };
  gr_graph *g = gr_graph_create();
  gr_tensor x = gr_input(g, "x", GR_SHAPE(N, 2, 8, 8)), y = gr_input(g, "y", GR_SHAPE(N, 2, 8, 8));
  gr_tensor w1 = gr_param(g, "w1", GR_SHAPE(8, 2, 3, 3)), b1 = gr_param(g, "b1", GR_SHAPE(8));
  gr_tensor w2 = gr_param(g, "w2", GR_SHAPE(2, 8, 3, 3)), b2 = gr_param(g, "b2", GR_SHAPE(2));
  gr_conv2d_desc same = {.padding = 1};
  gr_tensor out = gr_conv2d(g, gr_silu(g, gr_conv2d(g, x, w1, b1, &same)), w2, b2, &same);
  gr_tensor loss = gr_reduce_op(g, GR_MEAN, gr_unary_op(g, GR_SQUARE, gr_sub(g, out, y)), 15u);
  gr_output(g, loss, "loss");
  gr_adam_outputs ao;
  REQUIRE_OK(gr_adam(g, loss, &(gr_adam_desc){.max_grad_norm = 10.0f}, &ao));
  CHECK(ao.params == 4, "four parameters (%u)", ao.params);
  /* Teacher: the same net with other weights, run on the CPU reference for the targets. */
  gr_graph *tg = gr_graph_create();
  gr_tensor tx = gr_input(tg, "x", GR_SHAPE(N, 2, 8, 8));
  gr_tensor tw1 = gr_param(tg, "w1", GR_SHAPE(8, 2, 3, 3)), tw2 = gr_param(tg, "w2", GR_SHAPE(2, 8, 3, 3));
  gr_output(tg, gr_conv2d(tg, gr_silu(tg, gr_conv2d(tg, tx, tw1, 0, &same)), tw2, 0, &same), "y");
  float xv[N * 2 * 64], w1v[8 * 18], w2v[2 * 72], b1v[8] = {0}, b2v[2] = {0}, yv[N * 2 * 64];
  fill_uniform(xv, N * 128, -1, 1, 1);
  gr_cpu *tc;
  REQUIRE_OK(gr_cpu_create(tg, &tc));
  fill_uniform(w1v, 144, -0.5f, 0.5f, 2);
  fill_uniform(w2v, 144, -0.3f, 0.3f, 3);
  REQUIRE_OK(gr_cpu_set(tc, "x", xv, N * 128));
  REQUIRE_OK(gr_cpu_set(tc, "w1", w1v, 144));
  REQUIRE_OK(gr_cpu_set(tc, "w2", w2v, 144));
  REQUIRE_OK(gr_cpu_run(tc));
  memcpy(yv, gr_cpu_values(tc, gr_find(tg, "y")), sizeof yv);
  gr_cpu_destroy(tc);
  gr_graph_destroy(tg);
  /* Student from other random weights. */
  fill_uniform(w1v, 144, -0.3f, 0.3f, 4);
  fill_uniform(w2v, 144, -0.2f, 0.2f, 5);
  gr_plan *p;
  REQUIRE_OK(gr_plan_compile(g, graph_tests_device(), NULL, &p));
  REQUIRE_OK(gr_plan_set(p, "x", xv, N * 128));
  REQUIRE_OK(gr_plan_set(p, "y", yv, N * 128));
  REQUIRE_OK(gr_plan_set(p, "w1", w1v, 144));
  REQUIRE_OK(gr_plan_set(p, "w2", w2v, 144));
  REQUIRE_OK(gr_plan_set(p, "b1", b1v, 8));
  REQUIRE_OK(gr_plan_set(p, "b2", b2v, 2));
  gr_schedule sched = {.lr = 2e-2f, .warmup = 20, .total = STEPS};
  float first = 0, last = 0;
  for (int t = 1; t <= STEPS; t++) {
    float lr = gr_schedule_lr(&sched, t), tf = (float)t;
    REQUIRE_OK(gr_plan_set(p, "optim.lr", &lr, 1));
    REQUIRE_OK(gr_plan_set(p, "optim.step", &tf, 1));
    REQUIRE_OK(gr_plan_run(p));
    REQUIRE_OK(gr_plan_get(p, "loss", &last, 1));
    if (t == 1)
      first = last;
  }
  gr_plan_stats st;
  gr_plan_get_stats(p, &st);
  fprintf(stderr, "loss %.5f -> %.5f after %d steps; a step is %u dispatches, %u barriers, arena %.1f KiB\n", first,
          last, STEPS, st.dispatches, st.barriers, st.arena_bytes / 1024.0);
  CHECK(isfinite(last) && last < 0.05f * first, "the loss fell below 5%% of its start (%g -> %g)", first, last);
  gr_plan_destroy(p);
  gr_graph_destroy(g);
}
