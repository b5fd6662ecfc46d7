/*
 * fma-peak.h - this machine's fp32 FMA peak, measured: loops of independent
 * fused multiply-adds kept in registers, one file per ISA so that each gets
 * its own -m flags (test/bench/fma-peak-avx2.c, fma-peak-avx512.c). Only the
 * benchmark uses them, and only after checking the CPU.
 */
#ifndef SDXLVAE_BENCH_FMA_PEAK_H
#define SDXLVAE_BENCH_FMA_PEAK_H

#include <stdint.h>

/* Independent accumulator chains per loop iteration: more than latency (4)
 * x issue width (2 FMA ports) so the FMA units never wait on a result. */
#define BENCH_FMA_AVX2_CHAINS 12
#define BENCH_FMA_AVX512_CHAINS 16

/* FLOPs of one iteration: chains x lanes x 2 (a multiply and an add). */
#define BENCH_FMA_AVX2_FLOPS_PER_ITER (BENCH_FMA_AVX2_CHAINS * 8 * 2)
#define BENCH_FMA_AVX512_FLOPS_PER_ITER (BENCH_FMA_AVX512_CHAINS * 16 * 2)

/* Runs iters iterations; returns a checksum of the accumulators so that the
 * work cannot be optimised away. Call only when the CPU has the ISA. */
float bench_fma_avx2(uint64_t iters);
float bench_fma_avx512(uint64_t iters);

#endif
