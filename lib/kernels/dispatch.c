/*
 * dispatch.c - picks the kernel table for this CPU, once.
 *
 * The choice is min(what the CPU and OS support, SDXLVAE_ISA read at first
 * use, the cap last given to vae_kernels_set_max_isa()). The VAE_ISA_*
 * levels are compared as numbers, so on aarch64 a cap of VAE_ISA_AVX2_FMA
 * means scalar; only SCALAR and BEST are meant to be portable.
 *
 * x86-64 levels: SCALAR < AVX2_FMA < AVX512. The GEMM tile is 6x16, and
 * 12x32 in the AVX-512 table; the ops take MR and NR from the table. The
 * weights are packed once, at load, for the table's MR, and a model runs
 * with the table it was loaded with (vae_model.kt), whatever the cap later.
 *
 * The SIMD kernels are only referenced when the build has them: SIMD=0
 * (VAE_NO_SIMD) and other architectures drop their files, so the symbols
 * would not link.
 */
#include "kernels/kernels.h"
#include "kernels/winograd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && !defined(VAE_NO_SIMD)
#define VAE_HAVE_AVX2_TABLE 1
#include <cpuid.h>
#endif
#if defined(__aarch64__) && !defined(VAE_NO_SIMD)
#define VAE_HAVE_NEON_TABLE 1
#endif

static const vae_kernel_table scalar_table = {
    .isa = "scalar",
    .gemm_mr = 6,
    .gemm_nr = 16,
    .gemm = vae_f32_gemm_ukernel_6x16__scalar,
    .im2col = vae_f32_im2col_ukernel__scalar,
    .im2col_s2 = vae_f32_im2col_s2_ukernel__scalar,
    .f16_to_f32 = vae_f16_f32_cvt_ukernel__scalar,
    .bf16_to_f32 = vae_bf16_f32_cvt_ukernel__scalar,
    .wg_input = vae_f32_winograd_f4x3_input_tiles__scalar,
    .wg_output = vae_f32_winograd_f4x3_output_tiles__scalar,
    .wg_weight = vae_f32_winograd_f4x3_weight_tiles__scalar,
    .wg_input_rows = vae_f32_winograd_f4x3_input_rows__scalar,
    .wg_output_rows = vae_f32_winograd_f4x3_output_rows__scalar,
    .sum = vae_f32_sum_ukernel__scalar,
    .sqdev = vae_f32_sqdev_ukernel__scalar,
    .norm_silu = vae_f32_norm_silu_ukernel__scalar,
    .softmax = vae_f32_softmax_ukernel__scalar,
};

#if defined(VAE_HAVE_AVX2_TABLE)
/* The AVX-512 kernel's file is built where the AVX2 ones are. */
#define VAE_HAVE_AVX512_TABLE 1

static const vae_kernel_table avx512_table = {
    .isa = "avx512",
    .gemm_mr = 12,
    .gemm_nr = 32,
    .gemm = vae_f32_gemm_ukernel_12x32__avx512,
    .im2col = vae_f32_im2col_ukernel__avx512,
    .im2col_s2 = vae_f32_im2col_s2_ukernel__avx512,
    .f16_to_f32 = vae_f16_f32_cvt_ukernel__f16c,
    .bf16_to_f32 = vae_bf16_f32_cvt_ukernel__scalar,
    .wg_input = vae_f32_winograd_f4x3_input_tiles__avx512,
    .wg_output = vae_f32_winograd_f4x3_output_tiles__avx512,
    .wg_weight = vae_f32_winograd_f4x3_weight_tiles__avx512,
    .wg_input_rows = vae_f32_winograd_f4x3_input_rows__avx512,
    .wg_output_rows = vae_f32_winograd_f4x3_output_rows__avx512,
    .sum = vae_f32_sum_ukernel__avx512,
    .sqdev = vae_f32_sqdev_ukernel__avx512,
    .norm_silu = vae_f32_norm_silu_ukernel__avx512,
    .softmax = vae_f32_softmax_ukernel__avx512,
};

static const vae_kernel_table avx2_table = {
    .isa = "avx2-fma",
    .gemm_mr = 6,
    .gemm_nr = 16,
    .gemm = vae_f32_gemm_ukernel_6x16__avx2_fma,
    .im2col = vae_f32_im2col_ukernel__avx2,
    .im2col_s2 = vae_f32_im2col_s2_ukernel__avx2,
    .f16_to_f32 = vae_f16_f32_cvt_ukernel__f16c,
    .bf16_to_f32 = vae_bf16_f32_cvt_ukernel__scalar, /* a shift: no SIMD need */
    .wg_input = vae_f32_winograd_f4x3_input_tiles__avx2_fma,
    .wg_output = vae_f32_winograd_f4x3_output_tiles__avx2_fma,
    .wg_weight = vae_f32_winograd_f4x3_weight_tiles__avx2_fma,
    .wg_input_rows = vae_f32_winograd_f4x3_input_rows__avx2_fma,
    .wg_output_rows = vae_f32_winograd_f4x3_output_rows__avx2_fma,
    .sum = vae_f32_sum_ukernel__avx2_fma,
    .sqdev = vae_f32_sqdev_ukernel__avx2_fma,
    .norm_silu = vae_f32_norm_silu_ukernel__avx2_fma,
    .softmax = vae_f32_softmax_ukernel__avx2_fma,
};

static unsigned xcr0_low(void)
{
    unsigned xlo, xhi;
    /* Inline asm, not _xgetbv(): the intrinsic needs -mxsave, and this file
     * is built without ISA flags. Only called once OSXSAVE is seen. */
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    (void)xhi;
    return xlo;
}

/* AVX2, FMA and F16C in cpuid, and the OS saving XMM and YMM state (XCR0
 * bits 1 and 2): without the latter, AVX instructions fault even on a CPU
 * that has them (e.g. some hypervisors and old kernels). */
static int cpu_has_avx2_fma_f16c(void)
{
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned need1 = bit_OSXSAVE | bit_AVX | bit_FMA | bit_F16C;
    if ((ecx & need1) != need1) return 0;
    if ((xcr0_low() & 0x6u) != 0x6u) return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ebx & bit_AVX2) != 0;
}

/* On top of the above: AVX-512F and VL in cpuid (the kernel's file is built
 * with -mavx512vl, so the compiler may use EVEX encodings of 128/256-bit
 * instructions), and the OS saving the opmask registers, the upper halves of
 * zmm0-15 and zmm16-31 (XCR0 bits 5, 6, 7) as well as XMM/YMM (bits 1, 2). */
static int cpu_has_avx512f_vl(void)
{
    unsigned eax, ebx, ecx, edx;
    if (!cpu_has_avx2_fma_f16c()) return 0;
    if ((xcr0_low() & 0xe6u) != 0xe6u) return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned need7 = bit_AVX512F | bit_AVX512VL;
    return (ebx & need7) == need7;
}
#endif

#if defined(VAE_HAVE_NEON_TABLE)
/* Advanced SIMD is mandatory on aarch64: no detection needed. Every kernel
 * but the bf16 conversion (a shift: no SIMD need) has its NEON twin. */
static const vae_kernel_table neon_table = {
    .isa = "neon",
    .gemm_mr = 6,
    .gemm_nr = 16,
    .gemm = vae_f32_gemm_ukernel_6x16__neon,
    .im2col = vae_f32_im2col_ukernel__scalar, /* memcpy per row: no masked loads to gain from */
    .im2col_s2 = vae_f32_im2col_s2_ukernel__scalar,
    .f16_to_f32 = vae_f16_f32_cvt_ukernel__neon,
    .bf16_to_f32 = vae_bf16_f32_cvt_ukernel__scalar,
    .wg_input = vae_f32_winograd_f4x3_input_tiles__neon,
    .wg_output = vae_f32_winograd_f4x3_output_tiles__neon,
    .wg_weight = vae_f32_winograd_f4x3_weight_tiles__neon,
    .wg_input_rows = vae_f32_winograd_f4x3_input_rows__neon,
    .wg_output_rows = vae_f32_winograd_f4x3_output_rows__neon,
    .sum = vae_f32_sum_ukernel__neon,
    .sqdev = vae_f32_sqdev_ukernel__neon,
    .norm_silu = vae_f32_norm_silu_ukernel__neon,
    .softmax = vae_f32_softmax_ukernel__neon,
};
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int hw_isa = VAE_ISA_SCALAR;  /* best the CPU and the build support */
static int env_cap = VAE_ISA_BEST;   /* from SDXLVAE_ISA */
static _Atomic(const vae_kernel_table *) current;

static const vae_kernel_table *table_for(int cap)
{
    int isa = hw_isa < cap ? hw_isa : cap;
    if (env_cap < isa) isa = env_cap;
#if defined(VAE_HAVE_AVX512_TABLE)
    if (isa >= VAE_ISA_AVX512) return &avx512_table;
#endif
#if defined(VAE_HAVE_AVX2_TABLE)
    if (isa >= VAE_ISA_AVX2_FMA) return &avx2_table;
#endif
#if defined(VAE_HAVE_NEON_TABLE)
    if (isa >= VAE_ISA_NEON) return &neon_table;
#endif
    return &scalar_table;
}

static void detect(void)
{
#if defined(VAE_HAVE_AVX2_TABLE)
    if (cpu_has_avx2_fma_f16c()) hw_isa = VAE_ISA_AVX2_FMA;
#endif
#if defined(VAE_HAVE_AVX512_TABLE)
    if (cpu_has_avx512f_vl()) hw_isa = VAE_ISA_AVX512;
#endif
#if defined(VAE_HAVE_NEON_TABLE)
    hw_isa = VAE_ISA_NEON;
#endif
    /* Read once, at first use: a later setenv has no effect (and getenv is
     * not safe against a concurrent setenv anyway). */
    const char *e = getenv("SDXLVAE_ISA");
    if (e && strcmp(e, "scalar") == 0) env_cap = VAE_ISA_SCALAR;
#if defined(__x86_64__)
    /* "avx2" (or the table's name, "avx2-fma") caps at AVX2 on x86-64. Not
     * elsewhere: on aarch64 the numeric cap would mean scalar, not NEON. */
    if (e && (strcmp(e, "avx2") == 0 || strcmp(e, "avx2-fma") == 0))
        env_cap = VAE_ISA_AVX2_FMA;
#endif
    /* Any other value leaves the choice to the hardware. set_max_isa waits
     * on the same pthread_once, so this store always comes before its own. */
    atomic_store_explicit(&current, table_for(VAE_ISA_BEST), memory_order_release);
}

const vae_kernel_table *vae_kernels(void)
{
    const vae_kernel_table *t = atomic_load_explicit(&current, memory_order_acquire);
    if (t) return t;
    pthread_once(&detect_once, detect);
    return atomic_load_explicit(&current, memory_order_acquire);
}

const vae_kernel_table *vae_kernels_scalar(void)
{
    return &scalar_table;
}

void vae_kernels_set_max_isa(int isa)
{
    pthread_once(&detect_once, detect);
    atomic_store_explicit(&current, table_for(isa), memory_order_release);
}

int vae_kernels_cpu_supports(int isa)
{
    pthread_once(&detect_once, detect);
    switch (isa) {
    case VAE_ISA_SCALAR:
        return 1;
#if defined(VAE_HAVE_AVX2_TABLE)
    case VAE_ISA_AVX2_FMA:
        return hw_isa >= VAE_ISA_AVX2_FMA;
#endif
#if defined(VAE_HAVE_AVX512_TABLE)
    case VAE_ISA_AVX512:
        return hw_isa >= VAE_ISA_AVX512;
#endif
#if defined(VAE_HAVE_NEON_TABLE)
    case VAE_ISA_NEON:
        return hw_isa >= VAE_ISA_NEON;
#endif
    default:
        return 0;
    }
}
