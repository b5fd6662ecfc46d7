/*
 * test_kernels.c - every SIMD kernel against its scalar twin, the scalar ones
 * against double-precision or independent references, the packers with
 * every table's NR, and the ISA selection (SDXLVAE_ISA,
 * vae_kernels_set_max_isa, vae_kernels_cpu_supports).
 *
 * The GEMM kernels are tested one by one, each where the build has it and
 * the CPU runs it (the others are reported as skipped); the other kernels
 * (conversions, GroupNorm + SiLU, softmax, Winograd transforms) through
 * every table the build has and the CPU runs, against the scalar table's
 * bits. Where the build has no SIMD kernels (SIMD=0, another architecture)
 * or the CPU lacks them, the tests say so and still pass.
 *
 * Needs only lib/kernels/ and Check (no cJSON, no zlib), so that `make
 * check-neon` can build it statically for aarch64 and run it under qemu.
 * There, re-executing this binary (test_env_isa) needs the emulator: give
 * it as SDXLVAE_EXE_WRAPPER (e.g. qemu-aarch64), as check-neon does.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "testutil.h"

#define MR_MAX 12 /* the tallest tile (AVX-512's 12x32) */
#define TOL 1e-5

/* xorshift32: reproducible data without touching rand()'s global state. */
static uint32_t rng = 0x12345678u;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) * 0x1p-23f - 1.0f; /* [-1, 1) */
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The table under test; notes when it is the scalar one. */
static const vae_kernel_table *simd_table(const char *what)
{
    const vae_kernel_table *t = vae_kernels();
    if (t == vae_kernels_scalar())
        printf("note: %s: no SIMD kernels in this build or CPU (or SDXLVAE_ISA="
               "scalar): comparing scalar with scalar\n", what);
    return t;
}

/* ---- GEMM microkernel ------------------------------------------------------ */

/* Element-wise checks in the loops below call ck_abort_msg only on failure:
 * every ck_assert records its line with the runner (a write per call in
 * fork mode), which made these tests several times slower than their
 * arithmetic. */

static const uint32_t CANARY = 0x7fc0beefu; /* a NaN nobody computes */

/* A kernel and its reference. The reference's tile may be smaller (ref_mr
 * divides mr, ref_nr divides nr): it is then run on each ref_mr x ref_nr
 * block of the tile, with A and B repacked for it. exact: the two must agree
 * bit for bit. */
typedef struct gemm_pair {
    const char *name;
    int isa;                  /* the level the CPU must support */
    size_t mr, nr;            /* tile of fn */
    vae_gemm_ukernel_fn fn;
    const char *ref_name;
    size_t ref_mr, ref_nr;
    vae_gemm_ukernel_fn ref;
    int exact;
} gemm_pair;

/* Every GEMM kernel this build has, guarded as in dispatch.c. */
static const gemm_pair gemm_pairs[] = {
    /* The scalar 12x32 tile is four 6x16 tiles, to the bit (both are the
     * same code, f32-gemm-scalar.h); both against double. */
    {"12x32 scalar", VAE_ISA_SCALAR, 12, 32, vae_f32_gemm_ukernel_12x32__scalar,
     "6x16 scalar", 6, 16, vae_f32_gemm_ukernel_6x16__scalar, 1},
#if defined(__x86_64__) && !defined(VAE_NO_SIMD)
    {"6x16 avx2-fma", VAE_ISA_AVX2_FMA, 6, 16, vae_f32_gemm_ukernel_6x16__avx2_fma,
     "6x16 scalar", 6, 16, vae_f32_gemm_ukernel_6x16__scalar, 0},
    {"12x32 avx512", VAE_ISA_AVX512, 12, 32, vae_f32_gemm_ukernel_12x32__avx512,
     "12x32 scalar", 12, 32, vae_f32_gemm_ukernel_12x32__scalar, 0},
#endif
#if defined(__aarch64__) && !defined(VAE_NO_SIMD)
    {"6x16 neon", VAE_ISA_NEON, 6, 16, vae_f32_gemm_ukernel_6x16__neon,
     "6x16 scalar", 6, 16, vae_f32_gemm_ukernel_6x16__scalar, 0},
#endif
};
#define N_GEMM_PAIRS (sizeof gemm_pairs / sizeof gemm_pairs[0])
#define NR_MAX 32

/* Whether this CPU runs the pair's kernel; says so when it does not. */
static int pair_runnable(const gemm_pair *p, const char *what)
{
    if (vae_kernels_cpu_supports(p->isa)) return 1;
    printf("note: %s: %s skipped: this CPU (or OS) does not support it\n", what, p->name);
    return 0;
}

static void gemm_case(const gemm_pair *p, size_t mr, size_t nr, size_t kc, int acc,
                      size_t ldc, const float *a, const float *b, float *aref, float *bref,
                      float *c_simd, float *c_ref, size_t clen)
{
    const size_t MR = p->mr, NR = p->nr, RMR = p->ref_mr, RNR = p->ref_nr;
    double ref[MR_MAX * NR_MAX];
    float got_s[MR_MAX * NR_MAX], got_r[MR_MAX * NR_MAX], want[MR_MAX * NR_MAX];
    /* One row and one column of canary before the tile, rows after it. */
    const size_t off = ldc + 1;

    for (size_t i = 0; i < clen; i++) c_simd[i] = bitsf(CANARY);
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++)
            c_simd[off + i * ldc + j] = acc ? frand() : bitsf(CANARY);
    memcpy(c_ref, c_simd, clen * sizeof *c_ref);

    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            double s = acc ? (double)c_simd[off + i * ldc + j] : 0.0;
            for (size_t k = 0; k < kc; k++)
                s += (double)a[k * MR + i] * (double)b[k * NR + j];
            ref[i * nr + j] = s;
        }

    p->fn(mr, nr, kc, a, b, c_simd + off, ldc, acc);
    /* The reference, one RMR x RNR block at a time (one block when the
     * tiles are the same); A and B repacked for it, still zero padded. */
    for (size_t i0 = 0; i0 < mr; i0 += RMR) {
        for (size_t k = 0; k < kc; k++)
            memcpy(aref + k * RMR, a + k * MR + i0, RMR * sizeof *aref);
        size_t mri = mr - i0 < RMR ? mr - i0 : RMR;
        for (size_t j0 = 0; j0 < nr; j0 += RNR) {
            for (size_t k = 0; k < kc; k++)
                memcpy(bref + k * RNR, b + k * NR + j0, RNR * sizeof *bref);
            size_t nrj = nr - j0 < RNR ? nr - j0 : RNR;
            p->ref(mri, nrj, kc, aref, bref, c_ref + off + i0 * ldc + j0, ldc, acc);
        }
    }

    for (size_t idx = 0; idx < clen; idx++) {
        size_t rel = idx - off, i = rel / ldc, j = rel % ldc;
        int inside = idx >= off && i < mr && j < nr;
        if (inside || (fbits(c_simd[idx]) == CANARY && fbits(c_ref[idx]) == CANARY))
            continue;
        ck_abort_msg("%s mr=%zu nr=%zu kc=%zu acc=%d ldc=%zu: element %zu outside "
                     "the tile was written", p->name, mr, nr, kc, acc, ldc, idx);
    }
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            got_s[i * nr + j] = c_simd[off + i * ldc + j];
            got_r[i * nr + j] = c_ref[off + i * ldc + j];
            want[i * nr + j] = (float)ref[i * nr + j];
        }
    const size_t n = mr * nr;
    if (p->exact)
        ck_assert_msg(memcmp(got_s, got_r, n * sizeof *got_s) == 0,
                      "%s mr=%zu nr=%zu kc=%zu acc=%d ldc=%zu: not bit for bit %s",
                      p->name, mr, nr, kc, acc, ldc, p->ref_name);
    double e_sr = tu_rel_err(got_s, got_r, n);
    double e_sd = tu_rel_err(got_s, want, n);
    double e_rd = tu_rel_err(got_r, want, n);
    ck_assert_msg(e_sr <= TOL && e_sd <= TOL && e_rd <= TOL,
                  "%s gemm mr=%zu nr=%zu kc=%zu acc=%d ldc=%zu: rel err "
                  "kernel/%s %.3g kernel/double %.3g %s/double %.3g",
                  p->name, mr, nr, kc, acc, ldc, p->ref_name, e_sr, e_sd, p->ref_name,
                  e_rd);
}

/* Every kernel of the build that the CPU runs, against its reference and
 * double: every mr, every nr, short and long k, C overwritten and
 * accumulated, two row strides, canaries around the tile. */
START_TEST(test_gemm_kernels_vs_reference)
{
    static const size_t kcs[] = {1, 2, 3, 7, 16, 33, 256, 577};
    const size_t kmax = 577;

    float *a = malloc(kmax * MR_MAX * sizeof *a);
    float *aref = malloc(kmax * MR_MAX * sizeof *aref);
    float *b = malloc(kmax * NR_MAX * sizeof *b);
    float *bref = malloc(kmax * NR_MAX * sizeof *bref);
    const size_t clen_max = (MR_MAX + 3) * (NR_MAX + 8);
    float *c1 = malloc(clen_max * sizeof *c1);
    float *c2 = malloc(clen_max * sizeof *c2);
    ck_assert(a && aref && b && bref && c1 && c2);

    int simd_tested = 0;
    for (size_t pi = 0; pi < N_GEMM_PAIRS; pi++) {
        const gemm_pair *p = &gemm_pairs[pi];
        ck_assert(p->mr <= MR_MAX && p->mr % p->ref_mr == 0);
        ck_assert(p->nr <= NR_MAX && p->nr % p->ref_nr == 0);
        if (!pair_runnable(p, "gemm")) continue;
        simd_tested += p->isa != VAE_ISA_SCALAR;
        const size_t MR = p->mr, NR = p->nr;
        for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++) {
            const size_t kc = kcs[ki];
            for (size_t mr = 1; mr <= MR; mr++)
                for (size_t nr = 1; nr <= NR; nr++) {
                    /* Packed panels as the packer leaves them: zero padded. */
                    for (size_t k = 0; k < kc; k++) {
                        for (size_t i = 0; i < MR; i++) a[k * MR + i] = i < mr ? frand() : 0.0f;
                        for (size_t j = 0; j < NR; j++) b[k * NR + j] = j < nr ? frand() : 0.0f;
                    }
                    /* ldc just past the tile, and wider than a full tile. */
                    const size_t ldcs[2] = {nr + 1, NR + 8};
                    for (int li = 0; li < 2; li++)
                        for (int acc = 0; acc <= 1; acc++) {
                            size_t clen = (MR + 3) * ldcs[li];
                            gemm_case(p, mr, nr, kc, acc, ldcs[li], a, b, aref, bref, c1, c2,
                                      clen);
                        }
                }
        }
        printf("note: gemm: %s checked against %s and double\n", p->name, p->ref_name);
    }
    if (!simd_tested)
        printf("note: gemm: no SIMD kernel in this build or CPU: scalar kernels only\n");
    free(a);
    free(aref);
    free(b);
    free(bref);
    free(c1);
    free(c2);
}
END_TEST

/* Same inputs, same kernel: same bits (no dependence on alignment of C). */
START_TEST(test_gemm_deterministic)
{
    const size_t kc = 77;
    float a[77 * MR_MAX], b[77 * NR_MAX], c1[MR_MAX * NR_MAX + 1], c2[MR_MAX * NR_MAX + 1];
    for (size_t i = 0; i < kc * MR_MAX; i++) a[i] = frand();
    for (size_t i = 0; i < kc * NR_MAX; i++) b[i] = frand();
    for (size_t pi = 0; pi < N_GEMM_PAIRS; pi++) {
        const gemm_pair *p = &gemm_pairs[pi];
        /* The kernel, then its reference (the scalar tiles come up twice). */
        for (int which = 0; which < 2; which++) {
            const size_t MR = which ? p->ref_mr : p->mr, NR = which ? p->ref_nr : p->nr;
            vae_gemm_ukernel_fn f = which ? p->ref : p->fn;
            if (!which && !pair_runnable(p, "gemm determinism")) continue;
            f(MR, NR, kc, a, b, c1, NR, 0);
            f(MR, NR, kc, a, b, c2 + 1, NR, 0); /* misaligned C */
            ck_assert_msg(memcmp(c1, c2 + 1, MR * NR * sizeof *c1) == 0, "%s",
                          which ? p->ref_name : p->name);
        }
    }
}
END_TEST

/* ---- packing ----------------------------------------------------------------- */

static void check_packed_a(size_t MR, const float *p, size_t m, size_t kc, const float *a,
                           size_t lda)
{
    for (size_t i0 = 0; i0 < m; i0 += MR)
        for (size_t k = 0; k < kc; k++)
            for (size_t r = 0; r < MR; r++) {
                float want = i0 + r < m ? a[(i0 + r) * lda + k] : 0.0f;
                if (fbits(p[(i0 / MR) * kc * MR + k * MR + r]) != fbits(want))
                    ck_abort_msg("pack_a m=%zu kc=%zu: panel %zu k=%zu r=%zu", m, kc,
                                 i0 / MR, k, r);
            }
}

static void check_packed_b(size_t NR, const float *p, size_t kc, size_t n, const float *b,
                           size_t ldb)
{
    for (size_t j0 = 0; j0 < n; j0 += NR)
        for (size_t k = 0; k < kc; k++)
            for (size_t j = 0; j < NR; j++) {
                float want = j0 + j < n ? b[k * ldb + j0 + j] : 0.0f;
                if (fbits(p[(j0 / NR) * kc * NR + k * NR + j]) != fbits(want))
                    ck_abort_msg("pack_b nr=%zu kc=%zu n=%zu: panel %zu k=%zu j=%zu", NR,
                                 kc, n, j0 / NR, k, j);
            }
}

/* C = A*B through packed panels of the table's MR and NR, k split in two
 * blocks (the second one accumulating) when ksplit < kc: how the ops use
 * the kernels. */
static void packed_matmul(const vae_kernel_table *t, size_t m, size_t n, size_t kc,
                          size_t ksplit, const float *a, size_t lda, const float *b,
                          size_t ldb, float *c, size_t ldc)
{
    const size_t MR = t->gemm_mr, NR = t->gemm_nr;
    const size_t pm = (m + MR - 1) / MR, pn = (n + NR - 1) / NR;
    for (size_t k0 = 0; k0 < kc; k0 += ksplit) {
        const size_t kb = kc - k0 < ksplit ? kc - k0 : ksplit;
        /* Exact sizes, so the sanitizers see any overrun. */
        float *pa = malloc(pm * kb * MR * sizeof *pa);
        float *pb = malloc(pn * kb * NR * sizeof *pb);
        ck_assert(pa && pb);
        vae_pack_a(MR, m, kb, a + k0, lda, pa);
        vae_pack_b(NR, kb, n, b + k0 * ldb, ldb, pb);
        check_packed_a(MR, pa, m, kb, a + k0, lda);
        check_packed_b(NR, pb, kb, n, b + k0 * ldb, ldb);
        for (size_t pi = 0; pi < pm; pi++)
            for (size_t pj = 0; pj < pn; pj++) {
                size_t mr = m - pi * MR < MR ? m - pi * MR : MR;
                size_t nr = n - pj * NR < NR ? n - pj * NR : NR;
                t->gemm(mr, nr, kb, pa + pi * kb * MR, pb + pj * kb * NR,
                        c + pi * MR * ldc + pj * NR, ldc, k0 != 0);
            }
        free(pa);
        free(pb);
    }
}

/* The kernel tables this build has, lowest first, with their names. */
static const struct { int isa; const char *name; } table_levels[] = {
    {VAE_ISA_SCALAR, "scalar"},
#if defined(__x86_64__) && !defined(VAE_NO_SIMD)
    {VAE_ISA_AVX2_FMA, "avx2-fma"},
    {VAE_ISA_AVX512, "avx512"},
#endif
#if defined(__aarch64__) && !defined(VAE_NO_SIMD)
    {VAE_ISA_NEON, "neon"},
#endif
};
#define N_TABLE_LEVELS (sizeof table_levels / sizeof table_levels[0])

static void for_each_simd_table(void (*fn)(const vae_kernel_table *t), const char *what)
{
    int tested = 0;
    for (size_t li = 0; li < N_TABLE_LEVELS; li++) {
        if (table_levels[li].isa == VAE_ISA_SCALAR) continue;
        if (!vae_kernels_cpu_supports(table_levels[li].isa)) {
            printf("note: %s: %s table skipped: this CPU (or OS) does not support it\n", what,
                   table_levels[li].name);
            continue;
        }
        vae_kernels_set_max_isa(table_levels[li].isa);
        const vae_kernel_table *t = vae_kernels();
        if (t == vae_kernels_scalar()) {
            printf("note: %s: %s table capped by SDXLVAE_ISA=scalar\n", what,
                   table_levels[li].name);
            continue;
        }
        fn(t);
        tested++;
        printf("note: %s: %s table checked against scalar\n", what, t->isa);
    }
    vae_kernels_set_max_isa(VAE_ISA_BEST);
    if (!tested) printf("note: %s: no SIMD table in this build or CPU\n", what);
}

/* The name of the best table this build and CPU have, whatever the caps. */
static const char *best_hw_isa(void)
{
    const char *best = "scalar";
    for (size_t i = 0; i < N_TABLE_LEVELS; i++)
        if (vae_kernels_cpu_supports(table_levels[i].isa)) best = table_levels[i].name;
    return best;
}

/* The tile height each table is meant to have: 12 rows for AVX-512, 6
 * elsewhere (the weights are packed for it at load). */
static size_t table_mr(const vae_kernel_table *t)
{
    return strcmp(t->isa, "avx512") == 0 ? 12 : 6;
}

static void pack_and_gemm_table(const vae_kernel_table *t)
{
    static const size_t ks[] = {1, 5, 19};
    ck_assert_uint_eq(t->gemm_mr, table_mr(t));
    ck_assert(t->gemm_nr >= 16 && t->gemm_nr <= 64); /* what the ops allow */
    /* n up to two full 32-column panels and a bit: partial, full and
     * several panels for every NR. */
    for (size_t m = 1; m <= 13; m++)
        for (size_t n = 1; n <= 67; n++)
            for (size_t ki = 0; ki < 3; ki++) {
                const size_t kc = ks[ki], k0 = 2;
                /* Row strides wider than the data; A starts at column k0
                 * of a wider matrix, as a k block would. */
                const size_t lda = k0 + kc + 3, ldb = n + 2, ldc = n + 1;
                float *a = malloc(m * lda * sizeof *a);
                float *b = malloc(kc * ldb * sizeof *b);
                float *c = malloc(m * ldc * sizeof *c);
                float *want = malloc(m * n * sizeof *want);
                float *got = malloc(m * n * sizeof *got);
                ck_assert(a && b && c && want && got);
                for (size_t i = 0; i < m * lda; i++) a[i] = frand();
                for (size_t i = 0; i < kc * ldb; i++) b[i] = frand();
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < n; j++) {
                        double s = 0;
                        for (size_t k = 0; k < kc; k++)
                            s += (double)a[i * lda + k0 + k] * (double)b[k * ldb + j];
                        want[i * n + j] = (float)s;
                    }
                const size_t splits[2] = {kc, (kc + 1) / 2};
                for (int si = 0; si < 2; si++) {
                    for (size_t i = 0; i < m * ldc; i++) c[i] = bitsf(CANARY);
                    packed_matmul(t, m, n, kc, splits[si], a + k0, lda, b, ldb, c, ldc);
                    for (size_t i = 0; i < m; i++) {
                        memcpy(got + i * n, c + i * ldc, n * sizeof *got);
                        if (fbits(c[i * ldc + n]) != CANARY)
                            ck_abort_msg("%s m=%zu n=%zu k=%zu: C written past n", t->isa,
                                         m, n, kc);
                    }
                    double e = tu_rel_err(got, want, m * n);
                    ck_assert_msg(e <= TOL, "%s m=%zu n=%zu k=%zu split=%zu: rel err %.3g",
                                  t->isa, m, n, kc, splits[si], e);
                }
                free(a);
                free(b);
                free(c);
                free(want);
                free(got);
            }
}

/* Pack + gemm with every table this build has and the CPU runs, each with
 * its own NR (selected through vae_kernels_set_max_isa, as the ops see it). */
START_TEST(test_pack_and_gemm)
{
    for (size_t li = 0; li < N_TABLE_LEVELS; li++) {
        if (!vae_kernels_cpu_supports(table_levels[li].isa)) {
            printf("note: pack+gemm: %s table skipped: this CPU (or OS) does not "
                   "support it\n", table_levels[li].name);
            continue;
        }
        vae_kernels_set_max_isa(table_levels[li].isa);
        const vae_kernel_table *t = vae_kernels();
        if (strcmp(t->isa, table_levels[li].name) != 0)
            printf("note: pack+gemm: %s table capped by SDXLVAE_ISA: testing %s\n",
                   table_levels[li].name, t->isa);
        pack_and_gemm_table(t);
    }
    vae_kernels_set_max_isa(VAE_ISA_BEST);
}
END_TEST

/* ---- im2col ------------------------------------------------------------------- */

/* The planes of one im2col case, placed so that the data starts right
 * after an inaccessible page (start) or ends right before one (!start):
 * a kernel that reads a float outside a run next to the data faults, and
 * the forked test fails. */
typedef struct guarded {
    void *map;
    size_t map_len;
    float *data;
} guarded;

static guarded guarded_alloc(size_t n, int start)
{
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    const size_t body = (n * sizeof(float) + pg - 1) / pg * pg;
    guarded g = {NULL, body + 2 * pg, NULL};
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(g.map != MAP_FAILED);
    char *p = g.map;
    ck_assert_int_eq(mprotect(p, pg, PROT_NONE), 0);
    ck_assert_int_eq(mprotect(p + pg + body, pg, PROT_NONE), 0);
    g.data = start ? (float *)(p + pg) : (float *)(p + pg + body) - n;
    for (size_t i = 0; i < n; i++) g.data[i] = frand();
    return g;
}

/* The definition, element by element (kernels.h), for runs of step 1 or 2. */
static void im2col_by_definition(size_t kc, size_t nr, size_t taps, size_t t0, const float *in,
                                 size_t plane, const vae_tap_run *run, size_t step, float *dst)
{
    for (size_t kq = 0; kq < kc; kq++) {
        size_t t = (t0 + kq) % taps, c = (t0 + kq) / taps;
        for (size_t i = 0; i < nr; i++) {
            int in_run = (int32_t)i >= run[t].lo && (int32_t)i < run[t].hi;
            dst[kq * nr + i] =
                in_run ? in[(int64_t)(c * plane) + run[t].off + (int64_t)step * ((int64_t)i - run[t].lo)]
                       : 0.0f;
        }
    }
}

/* Runs against the planes' edges, empty and full runs, every NR of a table
 * and one that is not a multiple of a vector; fn (taking runs of `step`) is
 * compared with the definition bit for bit, with a canary after the panel. */
static void im2col_cases(vae_im2col_ukernel_fn fn, const char *name, size_t step)
{
    static const size_t nrs[] = {16, 32, 24, 5};
    static const size_t tapss[] = {1, 4, 9};
    static const size_t kcs[] = {1, 7, 37};
    for (size_t ni = 0; ni < 4; ni++)
        for (size_t ti = 0; ti < 3; ti++)
            for (size_t ki = 0; ki < 3; ki++)
                for (int start = 0; start <= 1; start++) {
                    const size_t nr = nrs[ni], taps = tapss[ti], kc = kcs[ki];
                    const size_t t0 = (size_t)(rng % (2 * taps + 1));
                    const size_t nch = (t0 + kc + taps - 1) / taps, plane = step * nr + 11;
                    guarded g = guarded_alloc(nch * plane, start);
                    vae_tap_run run[9];
                    for (size_t t = 0; t < taps; t++) {
                        size_t lo = (size_t)(rng % (nr + 1)), hi = lo + (size_t)(rng % (nr - lo + 1));
                        frand();
                        if (t == 0) { lo = 0; hi = nr; }          /* full */
                        if (t == 1) { lo = nr / 2; hi = nr / 2; } /* empty */
                        if (t == 2) { lo = 1; hi = nr - 1; }      /* padding at both ends */
                        /* the floats the run spans */
                        const size_t len = hi > lo ? step * (hi - lo - 1) + 1 : 0;
                        /* the plane's first or last floats, or anywhere */
                        int64_t off = (int64_t)(rng % (plane - len + 1));
                        if (t % 3 == 0) off = 0;
                        if (t % 3 == 1) off = (int64_t)(plane - len);
                        frand();
                        run[t] = (vae_tap_run){off, (int32_t)lo, (int32_t)hi};
                    }
                    float *got = malloc((kc * nr + 1) * sizeof *got);
                    float *want = malloc(kc * nr * sizeof *want);
                    ck_assert(got && want);
                    got[kc * nr] = bitsf(CANARY);
                    fn(kc, nr, taps, t0, g.data, plane, run, got);
                    im2col_by_definition(kc, nr, taps, t0, g.data, plane, run, step, want);
                    if (memcmp(got, want, kc * nr * sizeof *got) != 0)
                        ck_abort_msg("%s im2col step %zu nr=%zu taps=%zu kc=%zu t0=%zu: differs "
                                     "from the definition", name, step, nr, taps, kc, t0);
                    ck_assert_msg(fbits(got[kc * nr]) == CANARY, "%s im2col wrote past the panel",
                                  name);
                    free(got);
                    free(want);
                    munmap(g.map, g.map_len);
                }
}

static void im2col_table(const vae_kernel_table *t)
{
    im2col_cases(t->im2col, t->isa, 1);
    im2col_cases(t->im2col_s2, t->isa, 2);
}

START_TEST(test_im2col_kernels)
{
    im2col_cases(vae_f32_im2col_ukernel__scalar, "scalar", 1);
    im2col_cases(vae_f32_im2col_s2_ukernel__scalar, "scalar", 2);
    for_each_simd_table(im2col_table, "im2col");
}
END_TEST

/* ---- f16 -> f32 -------------------------------------------------------------- */

/* An independent reference: the value by its definition, in double. */
static float f16_by_definition(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (e == 0x1f) v = mant ? NAN : INFINITY;
    else if (e == 0) v = ldexp(mant, -24);
    else v = ldexp(1024 + mant, e - 25);
    return (float)(sign ? -v : v);
}

START_TEST(test_f16_scalar_known)
{
    static const struct { uint16_t h; uint32_t f; } cases[] = {
        {0x0000, 0x00000000u}, /* +0 */
        {0x8000, 0x80000000u}, /* -0 */
        {0x3c00, 0x3f800000u}, /* 1 */
        {0xc000, 0xc0000000u}, /* -2 */
        {0x3800, 0x3f000000u}, /* 0.5 */
        {0x3555, 0x3eaaa000u}, /* 0.333251953125 */
        {0x7bff, 0x477fe000u}, /* 65504, largest finite */
        {0x0400, 0x38800000u}, /* 2^-14, smallest normal */
        {0x03ff, 0x387fc000u}, /* largest subnormal */
        {0x0001, 0x33800000u}, /* 2^-24, smallest subnormal */
        {0x8001, 0xb3800000u}, /* -2^-24 */
        {0x0200, 0x38000000u}, /* 2^-15 */
        {0x7c00, 0x7f800000u}, /* +inf */
        {0xfc00, 0xff800000u}, /* -inf */
        {0x7e00, 0x7fc00000u}, /* quiet NaN */
        {0xfe00, 0xffc00000u}, /* negative quiet NaN */
        {0x7c01, 0x7fc02000u}, /* signalling NaN: payload kept, made quiet */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float f;
        vae_f16_f32_cvt_ukernel__scalar(1, &cases[i].h, &f);
        ck_assert_msg(fbits(f) == cases[i].f, "f16 0x%04x -> 0x%08x, want 0x%08x",
                      cases[i].h, fbits(f), cases[i].f);
    }
}
END_TEST

START_TEST(test_f16_scalar_all_by_definition)
{
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hh = (uint16_t)h;
        float got, want = f16_by_definition(hh);
        vae_f16_f32_cvt_ukernel__scalar(1, &hh, &got);
        if (want != want) {
            /* NaN: same sign, payload kept in the top mantissa bits, quiet. */
            uint32_t g = fbits(got);
            ck_assert_msg(got != got, "0x%04x: want NaN", h);
            ck_assert_uint_eq(g >> 31, h >> 15);
            ck_assert_uint_eq((g >> 13) & 0x3ffu, (h & 0x3ffu) | 0x200u);
            ck_assert_uint_eq(g & 0x1fffu, 0);
        } else {
            ck_assert_msg(fbits(got) == fbits(want), "0x%04x -> 0x%08x, want 0x%08x",
                          h, fbits(got), fbits(want));
        }
    }
}
END_TEST

START_TEST(test_f16_simd_vs_scalar_all)
{
    const vae_kernel_table *t = simd_table("f16 conversion");
    uint16_t *src = malloc(65536 * sizeof *src);
    float *a = malloc(65536 * sizeof *a), *b = malloc(65536 * sizeof *b);
    ck_assert(src && a && b);
    for (uint32_t h = 0; h < 65536; h++) src[h] = (uint16_t)h;
    t->f16_to_f32(65536, src, a);
    vae_f16_f32_cvt_ukernel__scalar(65536, src, b);
    for (uint32_t h = 0; h < 65536; h++) {
        if (b[h] != b[h])
            ck_assert_msg(a[h] != a[h] && signbit(a[h]) == signbit(b[h]),
                          "%s: 0x%04x should be NaN", t->isa, h);
        else
            ck_assert_msg(fbits(a[h]) == fbits(b[h]), "%s: 0x%04x -> 0x%08x, scalar 0x%08x",
                          t->isa, h, fbits(a[h]), fbits(b[h]));
    }
    free(src);
    free(a);
    free(b);
}
END_TEST

/* Every tail length, unaligned ends, nothing written past n. */
START_TEST(test_cvt_tails)
{
    const vae_kernel_table *t = simd_table("conversion tails");
    uint16_t src[48];
    float got[50], want[50];
    for (size_t i = 0; i < 48; i++) src[i] = (uint16_t)(0x3c00 + 37 * i);
    for (size_t n = 0; n <= 40; n++) {
        for (int which = 0; which < 2; which++) {
            vae_cvt_ukernel_fn f = which ? t->bf16_to_f32 : t->f16_to_f32;
            vae_cvt_ukernel_fn r = which ? vae_kernels_scalar()->bf16_to_f32
                                         : vae_kernels_scalar()->f16_to_f32;
            for (size_t i = 0; i < 50; i++) got[i] = want[i] = bitsf(CANARY);
            f(n, src + 1, got + 1);
            r(n, src + 1, want + 1);
            ck_assert_msg(memcmp(got, want, sizeof got) == 0, "%s tail n=%zu (%s)",
                          t->isa, n, which ? "bf16" : "f16");
            ck_assert(fbits(got[0]) == CANARY && fbits(got[n + 1]) == CANARY);
        }
    }
}
END_TEST

/* ---- bf16 -> f32 ------------------------------------------------------------- */

START_TEST(test_bf16_known)
{
    static const struct { uint16_t h; uint32_t f; } cases[] = {
        {0x0000, 0x00000000u}, {0x8000, 0x80000000u}, {0x3f80, 0x3f800000u},
        {0xc000, 0xc0000000u}, {0x4049, 0x40490000u}, /* 3.140625 */
        {0x7f7f, 0x7f7f0000u}, /* largest finite */
        {0x0001, 0x00010000u}, /* subnormal */
        {0x7f80, 0x7f800000u}, {0xff80, 0xff800000u}, {0x7fc0, 0x7fc00000u},
        {0x7f81, 0x7f810000u}, /* signalling NaN, kept as is */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float f;
        vae_bf16_f32_cvt_ukernel__scalar(1, &cases[i].h, &f);
        ck_assert_msg(fbits(f) == cases[i].f, "bf16 0x%04x -> 0x%08x", cases[i].h, fbits(f));
    }
    float pi;
    uint16_t h = 0x4049;
    vae_bf16_f32_cvt_ukernel__scalar(1, &h, &pi);
    ck_assert(pi == 3.140625f);

    const vae_kernel_table *t = simd_table("bf16 conversion");
    uint16_t *src = malloc(65536 * sizeof *src);
    float *a = malloc(65536 * sizeof *a);
    ck_assert(src && a);
    for (uint32_t x = 0; x < 65536; x++) src[x] = (uint16_t)x;
    t->bf16_to_f32(65536, src, a);
    for (uint32_t x = 0; x < 65536; x++) ck_assert_uint_eq(fbits(a[x]), x << 16);
    free(src);
    free(a);
}
END_TEST

/* ---- the other kernels of every table ---------------------------------------------- */

/* The tables this build has and the CPU runs, in turn, as the ops see them
 * (through vae_kernels_set_max_isa); fn(table) for each that is not the
 * scalar one. Defined below, with the levels. */
static void for_each_simd_table(void (*fn)(const vae_kernel_table *t), const char *what);

/* n values for the one-row kernels: every tail up to two 16-lane blocks and
 * a bit, and a long row with a tail. */
static const size_t row_ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 4099};
#define ROW_MAX 4099

/* GroupNorm's sums and normalise + SiLU, and softmax: the scalar table's
 * bits (the shared source fixes the order of every sum), from a misaligned
 * start, nothing written past n. */
static void rows_vs_scalar(const vae_kernel_table *t)
{
    const float specials[] = {NAN, INFINITY, -INFINITY, 100.0f, -100.0f, 88.5f, -87.5f, -0.0f};
    const vae_kernel_table *sc = vae_kernels_scalar();
    float *x = malloc((ROW_MAX + 2) * sizeof *x);
    float *y1 = malloc((ROW_MAX + 2) * sizeof *y1), *y2 = malloc((ROW_MAX + 2) * sizeof *y2);
    ck_assert(x && y1 && y2);
    for (size_t ni = 0; ni < sizeof row_ns / sizeof row_ns[0]; ni++) {
        const size_t n = row_ns[ni];
        /* SiLU's tails: e^-40 .. e^40 */
        for (size_t i = 0; i < n + 2; i++) x[i] = 40.0f * frand();
        if (t->sum(n, x + 1) != sc->sum(n, x + 1))
            ck_abort_msg("%s sum n=%zu: %.17g, scalar %.17g", t->isa, n, t->sum(n, x + 1),
                         sc->sum(n, x + 1));
        if (t->sqdev(n, x + 1, 0.25) != sc->sqdev(n, x + 1, 0.25))
            ck_abort_msg("%s sqdev n=%zu: not the scalar value", t->isa, n);
        /* In the longer rows, the values that take exp's selects (NaN,
         * clamped, infinite): a vectorised loop computes those with blends,
         * where the scalar one branches. */
        for (size_t i = 0; n >= 16 && i < sizeof specials / sizeof specials[0]; i++)
            x[1 + (i * 7) % n] = specials[i];
        for (int silu = 0; silu < 2; silu++) {
            for (size_t i = 0; i < n + 2; i++) y1[i] = y2[i] = bitsf(CANARY);
            t->norm_silu(n, x + 1, y1 + 1, 0.5f, 1.25f, -0.75f, silu);
            sc->norm_silu(n, x + 1, y2 + 1, 0.5f, 1.25f, -0.75f, silu);
            if (memcmp(y1, y2, (n + 2) * sizeof *y1) != 0 || fbits(y1[n + 1]) != CANARY)
                ck_abort_msg("%s norm_silu n=%zu silu=%d: not the scalar bits", t->isa, n,
                             silu);
        }
        /* finite, and spread so that the longer rows reach exp's clamp */
        for (size_t i = 0; i < n + 2; i++) y1[i] = y2[i] = isfinite(x[i]) ? 2.0f * x[i] : 0.0f;
        y1[0] = y2[0] = y1[n + 1] = y2[n + 1] = bitsf(CANARY);
        t->softmax(n, y1 + 1);
        sc->softmax(n, y2 + 1);
        if (memcmp(y1, y2, (n + 2) * sizeof *y1) != 0 || fbits(y1[n + 1]) != CANARY)
            ck_abort_msg("%s softmax n=%zu: not the scalar bits", t->isa, n);
    }
    free(x);
    free(y1);
    free(y2);
}

START_TEST(test_row_kernels_vs_scalar)
{
    for_each_simd_table(rows_vs_scalar, "groupnorm+silu, softmax");
}
END_TEST

/* The three Winograd transforms over 1..64 tiles (every vector tail), with
 * row strides wider than n: the scalar table's bits, and the columns past n
 * untouched. */
static void winograd_vs_scalar(const vae_kernel_table *t)
{
    const vae_kernel_table *sc = vae_kernels_scalar();
    enum { NMAX = 64, LD = NMAX + 3, LEN = 36 * LD };
    float *in = malloc(LEN * sizeof *in), *o1 = malloc(LEN * sizeof *o1);
    float *o2 = malloc(LEN * sizeof *o2);
    ck_assert(in && o1 && o2);
    for (size_t i = 0; i < LEN; i++) in[i] = frand();
    static const char *const names[3] = {"input", "output", "weight"};
    for (size_t n = 1; n <= NMAX; n++) {
        const size_t ld = n + 3; /* elements [n, ld) of each row stay canary */
        for (int which = 0; which < 3; which++) {
            for (size_t i = 0; i < LEN; i++) o1[i] = o2[i] = bitsf(CANARY);
            size_t rows = which == 1 ? 16 : 36;
            if (which == 0) {
                t->wg_input(n, in, ld, o1, ld);
                sc->wg_input(n, in, ld, o2, ld);
            } else if (which == 1) {
                t->wg_output(n, in, ld, o1, ld);
                sc->wg_output(n, in, ld, o2, ld);
            } else {
                t->wg_weight(n, in, ld, o1, ld);
                sc->wg_weight(n, in, ld, o2, ld);
            }
            if (memcmp(o1, o2, LEN * sizeof *o1) != 0)
                ck_abort_msg("%s winograd %s n=%zu: not the scalar bits", t->isa,
                             names[which], n);
            for (size_t r = 0; r < rows; r++)
                for (size_t j = n; j < ld; j++)
                    if (fbits(o1[r * ld + j]) != CANARY)
                        ck_abort_msg("%s winograd %s n=%zu: row %zu written past n", t->isa,
                                     names[which], n, r);
            for (size_t i = rows * ld; i < LEN; i++)
                if (fbits(o1[i]) != CANARY)
                    ck_abort_msg("%s winograd %s n=%zu: written past row %zu", t->isa,
                                 names[which], n, rows - 1);
        }
    }
    free(in);
    free(o1);
    free(o2);
}

START_TEST(test_winograd_vs_scalar)
{
    for_each_simd_table(winograd_vs_scalar, "winograd transforms");
}
END_TEST

/* The row forms of the Winograd transforms against the tile forms of the
 * scalar table, bit for bit: wg_input_rows over 1..64 tiles with every
 * border case (a zero column on the left, 1..3 missing on the right), and
 * wg_output_rows stored and accumulated; nothing written past the tiles. */
static void winograd_rows_vs_tiles(const vae_kernel_table *t)
{
    const vae_kernel_table *sc = vae_kernels_scalar();
    enum { NMAX = 64, SPAN = 4 * NMAX + 2, LD = NMAX + 3 };
    float *img = malloc(6 * SPAN * sizeof *img), *d = malloc(36 * 64 * sizeof *d);
    float *v1 = malloc(36 * LD * sizeof *v1), *v2 = malloc(36 * LD * sizeof *v2);
    float *m = malloc(36 * LD * sizeof *m), *y = malloc(16 * 64 * sizeof *y);
    float *o1 = malloc(4 * (4 * NMAX + 4) * sizeof *o1), *o2 = malloc(4 * (4 * NMAX + 4) * sizeof *o2);
    ck_assert(img && d && v1 && v2 && m && y && o1 && o2);
    for (size_t i = 0; i < 6 * SPAN; i++) img[i] = frand();
    for (size_t i = 0; i < 36 * LD; i++) m[i] = frand();
    for (size_t n = 1; n <= NMAX; n++) {
        const size_t span = 4 * n + 2;
        for (size_t lo = 0; lo <= 1; lo++)
            for (size_t cut = 0; cut <= 3; cut++) {
                size_t hi = span - cut;
                const float *rows[6];
                for (size_t r = 0; r < 6; r++) rows[r] = img + r * SPAN + lo;
                for (size_t r = 0; r < 6; r++)
                    for (size_t c = 0; c < 6; c++)
                        for (size_t q = 0; q < n; q++) {
                            size_t x = 4 * q + c;
                            d[(r * 6 + c) * 64 + q] = x >= lo && x < hi ? img[r * SPAN + x] : 0.0f;
                        }
                for (size_t i = 0; i < 36 * LD; i++) v1[i] = v2[i] = bitsf(CANARY);
                sc->wg_input(n, d, 64, v2, LD);
                t->wg_input_rows(n, rows, lo, hi, v1, LD);
                if (memcmp(v1, v2, 36 * LD * sizeof *v1) != 0)
                    ck_abort_msg("%s winograd input_rows n=%zu lo=%zu hi=%zu: not the tile form's bits",
                                 t->isa, n, lo, hi);
            }
        sc->wg_output(n, m, LD, y, 64);
        for (int acc = 0; acc < 2; acc++) {
            const size_t ol = 4 * n + 4;
            float *rows[4];
            for (size_t i = 0; i < 4 * ol; i++) o1[i] = o2[i] = acc ? frand() : bitsf(CANARY);
            for (size_t r = 0; r < 4; r++) {
                rows[r] = o1 + r * ol;
                for (size_t x = 4 * n; x < ol; x++) o1[r * ol + x] = o2[r * ol + x] = bitsf(CANARY);
                for (size_t q = 0; q < n; q++)
                    for (size_t c = 0; c < 4; c++) {
                        float *o = &o2[r * ol + 4 * q + c];
                        float yv = y[(r * 4 + c) * 64 + q] + 0.375f;
                        *o = acc ? *o + yv : yv;
                    }
            }
            t->wg_output_rows(n, m, LD, 0.375f, rows, acc);
            if (memcmp(o1, o2, 4 * ol * sizeof *o1) != 0)
                ck_abort_msg("%s winograd output_rows n=%zu acc=%d: not the tile form's bits",
                             t->isa, n, acc);
        }
    }
    free(img);
    free(d);
    free(v1);
    free(v2);
    free(m);
    free(y);
    free(o1);
    free(o2);
}

START_TEST(test_winograd_rows_vs_tiles)
{
    winograd_rows_vs_tiles(vae_kernels_scalar());
    for_each_simd_table(winograd_rows_vs_tiles, "winograd row forms");
}
END_TEST

/* Both conversions over every 16-bit pattern: the scalar table's bits (a
 * NaN: NaN of the same sign, as in test_f16_simd_vs_scalar_all). */
static void cvt_vs_scalar(const vae_kernel_table *t)
{
    const vae_kernel_table *sc = vae_kernels_scalar();
    uint16_t *src = malloc(65536 * sizeof *src);
    float *a = malloc(65536 * sizeof *a), *b = malloc(65536 * sizeof *b);
    ck_assert(src && a && b);
    for (uint32_t h = 0; h < 65536; h++) src[h] = (uint16_t)h;
    for (int which = 0; which < 2; which++) {
        (which ? t->bf16_to_f32 : t->f16_to_f32)(65536, src, a);
        (which ? sc->bf16_to_f32 : sc->f16_to_f32)(65536, src, b);
        for (uint32_t h = 0; h < 65536; h++) {
            int same = b[h] != b[h] ? a[h] != a[h] && signbit(a[h]) == signbit(b[h])
                                    : fbits(a[h]) == fbits(b[h]);
            if (!same)
                ck_abort_msg("%s %s 0x%04x -> 0x%08x, scalar 0x%08x", t->isa,
                             which ? "bf16" : "f16", h, fbits(a[h]), fbits(b[h]));
        }
    }
    free(src);
    free(a);
    free(b);
}

START_TEST(test_cvt_every_table)
{
    for_each_simd_table(cvt_vs_scalar, "f16/bf16 conversion");
}
END_TEST

/* ---- f32 -> f16 (the loader's, for VAE_LOAD_HALF_WEIGHTS) --------------------- */

static uint16_t to_half(float f)
{
    uint16_t h;
    vae_f32_f16_cvt_ukernel__scalar(1, &f, &h);
    return h;
}

static float from_half(uint16_t h)
{
    float f;
    vae_f16_f32_cvt_ukernel__scalar(1, &h, &f);
    return f;
}

START_TEST(test_f32_f16_known)
{
    static const struct { uint32_t f; uint16_t h; } cases[] = {
        {0x00000000u, 0x0000}, {0x80000000u, 0x8000}, /* signed zeros */
        {0x3f800000u, 0x3c00}, {0xc0000000u, 0xc000}, /* 1, -2 */
        {0x477fe000u, 0x7bff},                        /* 65504, largest finite */
        {0x477fefffu, 0x7bff},                        /* just below 65520 */
        {0x477ff000u, 0x7c00},                        /* 65520: the tie goes to inf */
        {0xc77ff000u, 0xfc00},
        {0x7149f2cau, 0x7c00},                        /* 1e30 */
        {0x7f800000u, 0x7c00}, {0xff800000u, 0xfc00}, /* +-inf */
        {0x38800000u, 0x0400},                        /* 2^-14, smallest normal */
        {0x387fc000u, 0x03ff},                        /* largest subnormal */
        {0x387fe000u, 0x0400},                        /* tie, rounds up to the normal */
        {0x33800000u, 0x0001},                        /* 2^-24, smallest subnormal */
        {0x33000000u, 0x0000},                        /* 2^-25: tie between 0 and 1 -> 0 */
        {0x33000001u, 0x0001},                        /* just above it */
        {0xb3000001u, 0x8001},
        {0x33c00000u, 0x0002},                        /* 1.5 * 2^-24: tie -> 2 */
        {0x34200000u, 0x0002},                        /* 2.5 * 2^-24: tie -> 2 */
        {0x2edbe6ffu, 0x0000},                        /* 1e-10 */
        {0x3f801000u, 0x3c00},                        /* 1 + 2^-11: tie -> 1 */
        {0x3f803000u, 0x3c02},                        /* 1 + 3 * 2^-11: tie -> even */
        {0x3f801001u, 0x3c01},                        /* just above the tie */
        {0x7fc00000u, 0x7e00},                        /* quiet NaN */
        {0xffc00000u, 0xfe00},
        {0x7f800001u, 0x7e00},                        /* signalling NaN: made quiet */
        {0x7fa00000u, 0x7f00},                        /* payload's top bits kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = to_half(bitsf(cases[i].f));
        ck_assert_msg(h == cases[i].h, "f32 0x%08x -> 0x%04x, want 0x%04x", cases[i].f, h,
                      cases[i].h);
    }
}
END_TEST

/* Every half survives the round trip, and around every midpoint between two
 * neighbouring halves (exact in fp32) the rounding goes to the nearer one,
 * the even one on the tie: that is round to nearest even, everywhere. */
START_TEST(test_f32_f16_all_halves)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = from_half((uint16_t)h);
        if (f != f) {
            ck_assert_uint_eq(to_half(f), h | 0x200u); /* NaN: made quiet */
            continue;
        }
        if (to_half(f) != h) ck_abort_msg("half 0x%04x does not round-trip", h);
    }
    for (uint32_t h = 0; h <= 0x7bffu; h++) {
        for (int neg = 0; neg < 2; neg++) {
            uint16_t s = neg ? 0x8000 : 0, lo = (uint16_t)(h | s), hi = (uint16_t)((h + 1) | s);
            double a = from_half(lo), b = h == 0x7bffu ? (neg ? -65536.0 : 65536.0) : from_half(hi);
            float mid = (float)((a + b) / 2); /* exact: 11 significant bits + 1 */
            uint16_t even = (h & 1u) ? hi : lo;
            float below = nextafterf(mid, (float)a), above = nextafterf(mid, (float)b);
            if (to_half(mid) != even || to_half(below) != lo || to_half(above) != hi)
                ck_abort_msg("around the midpoint of 0x%04x and 0x%04x: 0x%04x 0x%04x 0x%04x",
                             lo, hi, to_half(below), to_half(mid), to_half(above));
        }
    }
}
END_TEST

#if defined(__x86_64__)
#include <immintrin.h>
/* The hardware's conversion as a second, independent reference. */
__attribute__((target("avx,f16c"))) static uint16_t f16c_to_half(float f)
{
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}
#endif

START_TEST(test_f32_f16_vs_f16c)
{
#if defined(__x86_64__)
    if (!vae_kernels_cpu_supports(VAE_ISA_AVX2_FMA)) {
        printf("note: f32 -> f16: no F16C in this build or CPU: compared with no hardware\n");
        return;
    }
    /* a stride prime to every power of two sweeps all exponents and many
     * mantissa patterns, NaNs included */
    uint64_t n = 0;
    for (uint64_t x = 0; x <= 0xffffffffu; x += 4099, n++) {
        float f = bitsf((uint32_t)x);
        uint16_t a = to_half(f), b = f16c_to_half(f);
        if (a != b) ck_abort_msg("f32 0x%08x -> 0x%04x, F16C 0x%04x", (uint32_t)x, a, b);
    }
    ck_assert_uint_gt(n, 1000000);
#else
    printf("note: f32 -> f16: not x86-64: no hardware reference\n");
#endif
}
END_TEST

/* ---- ISA selection ------------------------------------------------------------- */

START_TEST(test_set_max_isa)
{
    const vae_kernel_table *best = vae_kernels();
    ck_assert_ptr_nonnull(best);
    vae_kernels_set_max_isa(VAE_ISA_SCALAR);
    ck_assert_ptr_eq(vae_kernels(), vae_kernels_scalar());
    ck_assert_str_eq(vae_kernels()->isa, "scalar");

    /* Each level the CPU supports up to the one in use (SDXLVAE_ISA may cap
     * this process) gives its own table; above it, the one in use. */
    ck_assert(vae_kernels_cpu_supports(VAE_ISA_SCALAR));
    int reached = 0;
    for (size_t li = 0; li < N_TABLE_LEVELS; li++) {
        if (!vae_kernels_cpu_supports(table_levels[li].isa)) continue;
        vae_kernels_set_max_isa(table_levels[li].isa);
        const vae_kernel_table *t = vae_kernels();
        ck_assert_uint_eq(t->gemm_mr, table_mr(t));
        ck_assert_str_eq(t->isa, reached ? best->isa : table_levels[li].name);
        if (strcmp(t->isa, best->isa) == 0) reached = 1;
    }
    ck_assert(reached);
#if defined(__x86_64__) && !defined(VAE_NO_SIMD)
    /* On an AVX-512 machine, the AVX2 cap really is the AVX2 table. */
    if (vae_kernels_cpu_supports(VAE_ISA_AVX512) && strcmp(best->isa, "avx512") == 0) {
        vae_kernels_set_max_isa(VAE_ISA_AVX2_FMA);
        ck_assert_str_eq(vae_kernels()->isa, "avx2-fma");
        ck_assert_uint_eq(vae_kernels()->gemm_nr, 16);
        vae_kernels_set_max_isa(VAE_ISA_AVX512);
        ck_assert_str_eq(vae_kernels()->isa, "avx512");
        ck_assert_uint_eq(vae_kernels()->gemm_nr, 32);
    }
#endif
    vae_kernels_set_max_isa(VAE_ISA_BEST);
    ck_assert_ptr_eq(vae_kernels(), best);
    for (size_t li = 0; li < N_TABLE_LEVELS; li++)
        printf("note: %s table: %s\n", table_levels[li].name,
               vae_kernels_cpu_supports(table_levels[li].isa) ? "supported"
                                                              : "not supported by this CPU");
    printf("note: kernels in use: %s\n", best->isa);
}
END_TEST

/* Runs this binary again with SDXLVAE_ISA=value (NULL: unset) in --print-isa
 * mode; returns its output in buf, or 0 when it cannot be re-executed.
 * Under an emulator without binfmt_misc (qemu-user in `make check-neon`) the
 * binary can only run through it: SDXLVAE_EXE_WRAPPER names the emulator,
 * and the binary's path comes from /proc/self/exe (qemu answers the guest's
 * own path). */
static int isa_of_child(const char *value, char *buf, size_t len)
{
    int fd[2];
    ck_assert_int_eq(pipe(fd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        if (value) setenv("SDXLVAE_ISA", value, 1);
        else unsetenv("SDXLVAE_ISA");
        const char *wrap = getenv("SDXLVAE_EXE_WRAPPER");
        if (wrap && *wrap) {
            char self[4096];
            ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
            if (sl <= 0) _exit(127);
            self[sl] = 0;
            execlp(wrap, wrap, self, "--print-isa", (char *)NULL);
        } else {
            execl("/proc/self/exe", "test_kernels", "--print-isa", (char *)NULL);
        }
        _exit(127);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < len && ((r = read(fd[0], buf + got, len - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0) got += (size_t)r;
    buf[got] = 0;
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) return 0;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--print-isa child failed");
    return 1;
}

START_TEST(test_env_isa)
{
    char buf[64], want[64];
    if (!isa_of_child("scalar", buf, sizeof buf)) {
        printf("note: cannot re-execute /proc/self/exe: SDXLVAE_ISA test skipped\n");
        return;
    }
    ck_assert_str_eq(buf, "scalar\n");

    /* Unset, or an unknown value: the best the hardware gives (whatever
     * this process itself runs under). */
    snprintf(want, sizeof want, "%s\n", best_hw_isa());
    ck_assert(isa_of_child(NULL, buf, sizeof buf));
    ck_assert_str_eq(buf, want);
    ck_assert(isa_of_child("no-such-isa", buf, sizeof buf));
    ck_assert_str_eq(buf, want);

    /* avx2 (or avx2-fma): at most the AVX2 table on x86-64, so "avx2-fma"
     * on an AVX-512 machine; elsewhere an unknown value. */
#if defined(__x86_64__)
    snprintf(want, sizeof want, "%s\n",
             vae_kernels_cpu_supports(VAE_ISA_AVX2_FMA) ? "avx2-fma" : "scalar");
#endif
    ck_assert(isa_of_child("avx2", buf, sizeof buf));
    ck_assert_str_eq(buf, want);
    ck_assert(isa_of_child("avx2-fma", buf, sizeof buf));
    ck_assert_str_eq(buf, want);
}
END_TEST

/* --print-isa: first use of the dispatcher from several threads at once;
 * all must see the same table. */
static void *first_use(void *arg)
{
    *(const vae_kernel_table **)arg = vae_kernels();
    return NULL;
}

static int print_isa(void)
{
    enum { NT = 8 };
    pthread_t th[NT];
    const vae_kernel_table *seen[NT];
    for (int i = 0; i < NT; i++)
        if (pthread_create(&th[i], NULL, first_use, &seen[i]) != 0) return 2;
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 1; i < NT; i++)
        if (seen[i] != seen[0]) return 3;
    printf("%s\n", seen[0]->isa);
    return 0;
}

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 600); /* sanitizer builds on a busy machine */
    tcase_add_test(tc, test_gemm_kernels_vs_reference);
    tcase_add_test(tc, test_gemm_deterministic);
    tcase_add_test(tc, test_pack_and_gemm);
    tcase_add_test(tc, test_im2col_kernels);
    suite_add_tcase(s, tc);

    tc = tcase_create("convert");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_f16_scalar_known);
    tcase_add_test(tc, test_f16_scalar_all_by_definition);
    tcase_add_test(tc, test_f16_simd_vs_scalar_all);
    tcase_add_test(tc, test_cvt_tails);
    tcase_add_test(tc, test_bf16_known);
    tcase_add_test(tc, test_cvt_every_table);
    tcase_add_test(tc, test_f32_f16_known);
    tcase_add_test(tc, test_f32_f16_all_halves);
    tcase_add_test(tc, test_f32_f16_vs_f16c);
    suite_add_tcase(s, tc);

    tc = tcase_create("rows+winograd");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_row_kernels_vs_scalar);
    tcase_add_test(tc, test_winograd_vs_scalar);
    tcase_add_test(tc, test_winograd_rows_vs_tiles);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_set_max_isa);
    tcase_add_test(tc, test_env_isa);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-isa") == 0) return print_isa();

    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
