/* The fp32 ceiling of the CPU under lavapipe: cores x FMA ports x 8 lanes (LLVMpipe emits
 * 256-bit vectors even on AVX-512 machines) x 2 flops x clock. Two FMA ports are assumed
 * for AVX2 CPUs (true of every Intel core since Haswell and AMD since Zen 2). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

static double clock_ghz(void) {
  double khz = 0;
  FILE *f = fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r");
  if (f) {
    if (fscanf(f, "%lf", &khz) != 1)
      khz = 0;
    fclose(f);
    if (khz > 0)
      return khz / 1e6;
  }
  f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return 0;
  char line[512];
  double mhz = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "cpu MHz", 7) && sscanf(strchr(line, ':') + 1, "%lf", &mhz) == 1)
      break;
  fclose(f);
  return mhz / 1e3;
}

double cpu_peak_gflops_lavapipe(char *how, unsigned how_size) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  double ghz = clock_ghz();
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (cores <= 0 || ghz <= 0 || !avx2) {
    snprintf(how, how_size, "not derived (cores %ld, clock %.2f GHz, AVX2+FMA %d)", cores, ghz, avx2);
    return 0;
  }
  double peak = (double)cores * 2 * 8 * 2 * ghz;
  snprintf(how, how_size, "%ld cores x 2 FMA x 8 lanes x 2 x %.2f GHz", cores, ghz);
  return peak;
}
