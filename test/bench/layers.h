/*
 * layers.h - `bench --layers`: the convolution kernels alone, on the 3x3
 * layer shapes of the SDXL VAE, against the measured FMA peak.
 */
#ifndef SDXLVAE_BENCH_LAYERS_H
#define SDXLVAE_BENCH_LAYERS_H

/* Times every layer shape with the direct kernels (weights packed as at
 * load) and with Winograd; prints a table (and returns 0) or an error (1).
 * peak_gflops: the FMA peak on `threads` threads (0: unknown). */
int bench_layers(int runs, int threads, double peak_gflops);

#endif
