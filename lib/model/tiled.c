/* tiled.c - the encoder and decoder in bounded memory, with the same answer.
 *
 * The graph is flattened into units (a convolution, a GroupNorm+SiLU, a
 * ResnetBlock, the mid-block attention); point k is the tensor between unit
 * k-1 and unit k. A plan stores some points whole ("checkpoints") and runs
 * each segment between two of them tile by tile: a tile of the segment's
 * output asks its unit for that rectangle, which asks the unit before it for
 * the rectangle plus the halo its convolution reads, down to the stored
 * checkpoint. Convolutions thus read real neighbours (or wrap around, with
 * circular padding), never padding at tile borders.
 *
 * GroupNorm needs statistics of the whole tensor it normalises. Before the
 * tiles of a segment run, every GroupNorm inside it gets them from a pass of
 * its own: the segment is evaluated tile by tile up to that norm's input and
 * the per-group counts, means and squared deviations are merged (Chan's
 * update). So no tile is normalised with its own statistics (the colour
 * shift of per-tile normalisation), at the price of recomputing the segment
 * once per norm. The plan trades that recomputation against the memory of
 * more checkpoints: a small dynamic program picks the checkpoints and the
 * tile side that cost the least arithmetic within the budget.
 *
 * The attention is global; it always runs whole on a stored point, in its
 * lean form (x, K and V^T only). */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U_CONV 0
#define U_NORM 1
#define U_RES 2
#define U_ATTN 3
#define MAX_UNITS VAE_MAX_UNITS

typedef struct unit {
    int kind;
    const vae_conv *cv;   /* U_CONV */
    int mode;             /* VAE_CONV_* */
    const vae_norm *nm;   /* U_NORM */
    const vae_resnet *res;
    const vae_attn *at;
    int32_t cin, cout, cmid;
} unit;

typedef struct point {
    int32_t c, h, w;
} point;

typedef struct graph {
    unit u[MAX_UNITS];
    point p[MAX_UNITS + 1];
    int n;
    int32_t img_h, img_w;  /* the image side of the pass, for tile sides */
} graph;

typedef struct rect {
    int32_t y0, y1, x0, x1;
} rect;

static int32_t area_h(rect r) { return r.y1 - r.y0; }
static int32_t area_w(rect r) { return r.x1 - r.x0; }
static uint64_t area(rect r) { return (uint64_t)area_h(r) * (uint64_t)area_w(r); }

static int add_unit(graph *g, unit u)
{
    if (g->n >= MAX_UNITS) return 0;
    point in = g->p[g->n], out = in;
    out.c = u.cout;
    if (u.kind == U_CONV && u.mode == VAE_CONV_UP2) { out.h *= 2; out.w *= 2; }
    if (u.kind == U_CONV && u.mode == VAE_CONV_DOWN2) { out.h /= 2; out.w /= 2; }
    g->u[g->n] = u;
    g->p[++g->n] = out;
    return 1;
}

static unit conv_unit(const vae_conv *cv, int mode)
{
    unit u;
    memset(&u, 0, sizeof u);
    u.kind = U_CONV;
    u.cv = cv;
    u.mode = mode;
    u.cin = cv->cin;
    u.cout = cv->cout;
    return u;
}

static unit res_unit(const vae_resnet *r)
{
    unit u;
    memset(&u, 0, sizeof u);
    u.kind = U_RES;
    u.res = r;
    u.cin = r->conv1.cin;
    u.cmid = r->conv1.cout;
    u.cout = r->conv2.cout;
    return u;
}

static int mid_units(graph *g, const vae_coder *c)
{
    unit a;
    memset(&a, 0, sizeof a);
    a.kind = U_ATTN;
    a.at = &c->attn;
    a.cin = a.cout = c->attn.q.cin;
    return add_unit(g, res_unit(&c->mid1)) && add_unit(g, a) && add_unit(g, res_unit(&c->mid2));
}

static int norm_unit(graph *g, const vae_norm *nm)
{
    unit u;
    memset(&u, 0, sizeof u);
    u.kind = U_NORM;
    u.nm = nm;
    u.cin = u.cout = nm->c;
    return add_unit(g, u);
}

/* h x w: the input (latent pixels for the decoder, image pixels for the
 * encoder). 0 when the graph has more units than MAX_UNITS. */
static int build_graph(const vae_model *m, int dec, int32_t h, int32_t w, graph *g)
{
    const vae_arch *a = &m->arch;
    int ok = 1;
    memset(g, 0, sizeof *g);
    if (dec) {
        const vae_coder *d = &m->dec;
        int32_t f = 1 << (a->levels - 1);
        g->img_h = h * f;
        g->img_w = w * f;
        g->p[0] = (point){a->latent_channels, h, w};
        if (a->use_post_quant_conv) ok = ok && add_unit(g, conv_unit(&m->post_quant_conv, VAE_CONV_SAME));
        ok = ok && add_unit(g, conv_unit(&d->conv_in, VAE_CONV_SAME)) && mid_units(g, d);
        for (int32_t l = a->levels - 1; l >= 0 && ok; l--) {
            for (int32_t j = 0; j < d->levels[l].n_res && ok; j++)
                ok = add_unit(g, res_unit(&d->levels[l].res[j]));
            if (d->levels[l].has_sample)
                ok = ok && add_unit(g, conv_unit(&d->levels[l].sample, VAE_CONV_UP2));
        }
        ok = ok && norm_unit(g, &d->norm_out) && add_unit(g, conv_unit(&d->conv_out, VAE_CONV_SAME));
    } else {
        const vae_coder *e = &m->enc;
        g->img_h = h;
        g->img_w = w;
        g->p[0] = (point){a->in_channels, h, w};
        ok = add_unit(g, conv_unit(&e->conv_in, VAE_CONV_SAME));
        for (int32_t l = 0; l < a->levels && ok; l++) {
            for (int32_t j = 0; j < e->levels[l].n_res && ok; j++)
                ok = add_unit(g, res_unit(&e->levels[l].res[j]));
            if (e->levels[l].has_sample)
                ok = ok && add_unit(g, conv_unit(&e->levels[l].sample, VAE_CONV_DOWN2));
        }
        ok = ok && mid_units(g, e) && norm_unit(g, &e->norm_out) &&
             add_unit(g, conv_unit(&e->conv_out, VAE_CONV_SAME));
        if (a->use_quant_conv) ok = ok && add_unit(g, conv_unit(&m->quant_conv, VAE_CONV_SAME));
    }
    return ok;
}

/* ---- One run (or a dry run that only counts) ------------------------------ */

typedef struct region {
    float *p;
    rect r;
    int32_t c;
    uint64_t cap;         /* floats of the block behind p */
} region;

/* Freed region blocks, kept for the next tile: every tile asks for the same
 * sizes, and a fresh allocation of a large block costs a page fault per
 * page on first touch. */
#define CACHE_N 32
typedef struct block {
    float *p;
    uint64_t cap;
} block;

typedef struct runner {
    const vae_model *m;
    vae_ctx *ctx;
    vae_error *err;
    const graph *g;
    int circular;
    int dry;              /* count cost and memory, compute nothing */
    int flash;            /* the attention in its flash form (out of place) */
    int a;                /* the segment's stored source: point a ... */
    const float *src;     /* ... held whole here */
    double *stats;        /* per unit, 2 norms x (mean, rstd) x groups */
    double *acc;          /* 3 x groups */
    /* the dry run's (and the real run's) counts */
    double cost;          /* multiply-adds */
    uint64_t live, peak;  /* floats of regions */
    block cache[CACHE_N];
    int n_cache;
    uint64_t held, limit; /* floats in live and cached blocks; their bound */
} runner;

static void cache_trim(runner *R, uint64_t limit)
{
    while (R->n_cache > 0 && R->held > limit) {
        int big = 0;
        for (int i = 1; i < R->n_cache; i++)
            if (R->cache[i].cap > R->cache[big].cap) big = i;
        R->held -= R->cache[big].cap;
        vae_free_aligned(R->cache[big].p);
        R->cache[big] = R->cache[--R->n_cache];
    }
}

static double *stats_of(const runner *R, int k, int slot)
{
    if (!R->stats) return NULL; /* a dry run */
    return R->stats + ((size_t)k * 2 + (size_t)slot) * 2 * (size_t)R->m->arch.groups;
}

static int32_t reg_alloc(runner *R, region *x, int32_t c, rect r)
{
    x->c = c;
    x->r = r;
    x->p = NULL;
    uint64_t n = (uint64_t)c * area(r);
    R->live += n;
    if (R->live > R->peak) R->peak = R->live;
    if (R->dry) return VAE_OK;
    /* the smallest cached block that fits and wastes at most an eighth: the
     * blocks held then stay within the limit the plan counts */
    int best = -1;
    for (int i = 0; i < R->n_cache; i++)
        if (R->cache[i].cap >= n && R->cache[i].cap <= n + n / 8 &&
            (best < 0 || R->cache[i].cap < R->cache[best].cap))
            best = i;
    if (best >= 0) {
        x->p = R->cache[best].p;
        x->cap = R->cache[best].cap;
        R->cache[best] = R->cache[--R->n_cache];
        return VAE_OK;
    }
    cache_trim(R, R->limit > n ? R->limit - n : 0);
    if (!(x->p = vae_alloc_floats(n)))
        return vae_fail(R->err, VAE_ERR_NO_MEMORY, "out of memory for a %d x %d x %d tile", c,
                        area_h(r), area_w(r));
    x->cap = n;
    R->held += n;
    return VAE_OK;
}

static void reg_free(runner *R, region *x)
{
    if (x->c == 0) return;
    R->live -= (uint64_t)x->c * area(x->r);
    if (x->p) {
        if (R->n_cache < CACHE_N) {
            R->cache[R->n_cache++] = (block){x->p, x->cap};
        } else {
            R->held -= x->cap;
            vae_free_aligned(x->p);
        }
    }
    x->p = NULL;
    x->c = 0;
}

static int32_t floor_div2(int32_t v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

static rect clip(const runner *R, rect r, point p)
{
    if (R->circular) return r;
    if (r.y0 < 0) r.y0 = 0;
    if (r.x0 < 0) r.x0 = 0;
    if (r.y1 > p.h) r.y1 = p.h;
    if (r.x1 > p.w) r.x1 = p.w;
    return r;
}

static rect grow(rect r, int32_t d) { return (rect){r.y0 - d, r.y1 + d, r.x0 - d, r.x1 + d}; }

static int32_t wrap(int32_t v, int32_t n)
{
    v %= n;
    return v < 0 ? v + n : v;
}

/* Copies run over the threads, a channel per item: on 2 cores a serial
 * copy of every tile's regions shows in the time. */
typedef struct copy_job {
    const region *src, *dst;
    const float *plane0;   /* gather: the stored source */
    point p;
} copy_job;

/* dst (region) = the part of src (region) it covers. */
static void crop_item(void *arg, size_t c, int thread)
{
    (void)thread;
    const copy_job *j = arg;
    const region *src = j->src, *dst = j->dst;
    int32_t sw = area_w(src->r), dw = area_w(dst->r), dh = area_h(dst->r);
    for (int32_t y = 0; y < dh; y++)
        memcpy(dst->p + (c * (size_t)dh + (size_t)y) * (size_t)dw,
               src->p + (c * (size_t)area_h(src->r) + (size_t)(y + dst->r.y0 - src->r.y0)) * (size_t)sw +
                   (dst->r.x0 - src->r.x0),
               (size_t)dw * sizeof(float));
}

static int32_t crop_new(runner *R, const region *src, rect r, region *dst)
{
    int32_t rc = reg_alloc(R, dst, src->c, r);
    if (rc == VAE_OK && !R->dry) {
        copy_job j = {src, dst, NULL, {0, 0, 0}};
        vae_pool_run(R->ctx->pool, (size_t)dst->c, crop_item, &j);
    }
    return rc;
}

static void gather_item(void *arg, size_t c, int thread)
{
    (void)thread;
    const copy_job *j = arg;
    const region *out = j->dst;
    point p = j->p;
    rect r = out->r;
    int32_t h = area_h(r), w = area_w(r);
    for (int32_t y = 0; y < h; y++) {
        const float *row = j->plane0 + (c * (size_t)p.h + (size_t)wrap(r.y0 + y, p.h)) * (size_t)p.w;
        float *d = out->p + (c * (size_t)h + (size_t)y) * (size_t)w;
        int32_t x = 0;
        while (x < w) {
            int32_t sx = wrap(r.x0 + x, p.w), run = p.w - sx;
            if (run > w - x) run = w - x;
            memcpy(d + x, row + sx, (size_t)run * sizeof(float));
            x += run;
        }
    }
}

/* A rectangle of the stored source (wrapping around with circular). */
static int32_t gather(runner *R, rect r, region *out)
{
    point p = R->g->p[R->a];
    int32_t rc = reg_alloc(R, out, p.c, r);
    if (rc != VAE_OK || R->dry) return rc;
    copy_job j = {NULL, out, R->src, p};
    vae_pool_run(R->ctx->pool, (size_t)p.c, gather_item, &j);
    return VAE_OK;
}

static double conv_macs(const vae_conv *cv) { return (double)cv->cout * cv->cin * cv->ksize * cv->ksize; }

/* After a unit of the given cost: progress, and the count. */
static int32_t done(runner *R, double macs)
{
    R->cost += macs;
    if (R->dry) return VAE_OK;
    R->ctx->progress_done += macs;
    return vae_progress_report(R->ctx, R->err);
}

static int32_t conv_on(runner *R, const vae_conv *cv, int mode, const region *in, region *out,
                       int accumulate)
{
    if (R->dry) return VAE_OK;
    return vae_conv2d(R->ctx, cv, mode, in->p, area_h(in->r), area_w(in->r), out->p, accumulate,
                      R->err);
}

static void norm_on(runner *R, const vae_norm *nm, const double *st, const region *in, region *out)
{
    if (R->dry) return;
    int32_t G = R->m->arch.groups;
    vae_groupnorm_apply(R->ctx, nm, G, st, st + G, in->p, area_h(in->r), area_w(in->r), out->p, 1);
}

static int32_t eval_point(runner *R, int k, rect r, region *out);

/* conv1 of ResnetBlock k over r (its input's halo is 1). */
static int32_t eval_conv1(runner *R, int k, rect r, region *out)
{
    const unit *u = &R->g->u[k];
    rect rin = clip(R, grow(r, 1), R->g->p[k]);
    region in = {0}, h1 = {0}, c1 = {0};
    int32_t rc;
    if ((rc = eval_point(R, k, rin, &in)) != VAE_OK) goto out;
    if ((rc = reg_alloc(R, &h1, u->cin, rin)) != VAE_OK) goto out;
    norm_on(R, &u->res->norm1, stats_of(R, k, 0), &in, &h1);
    reg_free(R, &in);
    if ((rc = reg_alloc(R, &c1, u->cmid, rin)) != VAE_OK) goto out;
    if ((rc = conv_on(R, &u->res->conv1, VAE_CONV_SAME, &h1, &c1, 0)) != VAE_OK) goto out;
    reg_free(R, &h1);
    if ((rc = crop_new(R, &c1, r, out)) != VAE_OK) goto out;
    rc = done(R, conv_macs(&u->res->conv1) * (double)area(rin));
out:
    reg_free(R, &in);
    reg_free(R, &h1);
    reg_free(R, &c1);
    return rc;
}

/* Unit k over r of its output (point k+1). */
static int32_t apply(runner *R, int k, rect r, region *out)
{
    const unit *u = &R->g->u[k];
    const point pin = R->g->p[k];
    region in = {0}, t = {0}, s = {0};
    int32_t rc = VAE_OK;
    if (u->kind == U_NORM) {
        if ((rc = eval_point(R, k, r, &in)) != VAE_OK) goto out;
        if ((rc = reg_alloc(R, out, u->cout, r)) != VAE_OK) goto out;
        norm_on(R, u->nm, stats_of(R, k, 0), &in, out);
        rc = done(R, 8.0 * u->cout * (double)area(r));
    } else if (u->kind == U_CONV && (u->cv->ksize == 1 || u->mode == VAE_CONV_DOWN2)) {
        rect rin = r;
        if (u->mode == VAE_CONV_DOWN2)
            rin = clip(R, (rect){2 * r.y0, 2 * r.y1 + 1, 2 * r.x0, 2 * r.x1 + 1}, pin);
        if ((rc = eval_point(R, k, rin, &in)) != VAE_OK) goto out;
        if ((rc = reg_alloc(R, out, u->cout, r)) != VAE_OK) goto out;
        if ((rc = conv_on(R, u->cv, u->mode, &in, out, 0)) != VAE_OK) goto out;
        rc = done(R, conv_macs(u->cv) * (double)area(r));
    } else if (u->kind == U_CONV) {
        /* stride 1 or nearest-2x then stride 1: run the conv on the input
         * rectangle with its halo, keep the part whose taps were all real */
        int up = u->mode == VAE_CONV_UP2;
        rect rin = up ? (rect){floor_div2(r.y0 - 1), floor_div2(r.y1) + 1, floor_div2(r.x0 - 1),
                               floor_div2(r.x1) + 1}
                      : grow(r, 1);
        rin = clip(R, rin, pin);
        rect rt = up ? (rect){2 * rin.y0, 2 * rin.y1, 2 * rin.x0, 2 * rin.x1} : rin;
        if ((rc = eval_point(R, k, rin, &in)) != VAE_OK) goto out;
        if ((rc = reg_alloc(R, &t, u->cout, rt)) != VAE_OK) goto out;
        if ((rc = conv_on(R, u->cv, u->mode, &in, &t, 0)) != VAE_OK) goto out;
        reg_free(R, &in);
        if ((rc = crop_new(R, &t, r, out)) != VAE_OK) goto out;
        rc = done(R, conv_macs(u->cv) * (double)area(rt));
    } else if (u->kind == U_RES) {
        /* the input once, with a halo of 2: conv1 needs 1 around conv2's 1 */
        const vae_resnet *res = u->res;
        rect r1 = clip(R, grow(r, 1), R->g->p[k + 1]);
        rect rin = clip(R, grow(r1, 1), pin);
        region h = {0};
        if ((rc = eval_point(R, k, rin, &in)) != VAE_OK) goto out;
        if ((rc = reg_alloc(R, &h, u->cin, rin)) != VAE_OK) goto out;
        norm_on(R, &res->norm1, stats_of(R, k, 0), &in, &h);
        if ((rc = reg_alloc(R, &t, u->cmid, rin)) != VAE_OK ||
            (rc = conv_on(R, &res->conv1, VAE_CONV_SAME, &h, &t, 0)) != VAE_OK) {
            reg_free(R, &h);
            goto out;
        }
        reg_free(R, &h);
        region c1 = {0};
        if ((rc = crop_new(R, &t, r1, &c1)) != VAE_OK) goto out;
        reg_free(R, &t);
        norm_on(R, &res->norm2, stats_of(R, k, 1), &c1, &c1);
        /* the skip over r1, through the 1x1 shortcut when channels change */
        region sk = {0};
        if ((rc = crop_new(R, &in, r1, &sk)) != VAE_OK) { reg_free(R, &c1); goto out; }
        reg_free(R, &in);
        if (res->has_shortcut) {
            if ((rc = reg_alloc(R, &s, u->cout, r1)) != VAE_OK ||
                (rc = conv_on(R, &res->shortcut, VAE_CONV_SAME, &sk, &s, 0)) != VAE_OK) {
                reg_free(R, &c1);
                reg_free(R, &sk);
                goto out;
            }
            reg_free(R, &sk);
        } else {
            s = sk;
        }
        /* the residual add is fused: conv2 accumulates onto the skip */
        rc = conv_on(R, &res->conv2, VAE_CONV_SAME, &c1, &s, 1);
        reg_free(R, &c1);
        if (rc != VAE_OK) goto out;
        if ((rc = crop_new(R, &s, r, out)) != VAE_OK) goto out;
        double macs = conv_macs(&res->conv1) * (double)area(rin) +
                      conv_macs(&res->conv2) * (double)area(r1);
        if (res->has_shortcut) macs += conv_macs(&res->shortcut) * (double)area(r1);
        rc = done(R, macs);
    } else {
        rc = vae_fail(R->err, VAE_ERR_INTERNAL, "attention inside a tiled segment");
    }
out:
    reg_free(R, &in);
    reg_free(R, &t);
    reg_free(R, &s);
    if (rc != VAE_OK) reg_free(R, out);
    return rc;
}

/* Point k over r: the stored source, or unit k-1's output. */
static int32_t eval_point(runner *R, int k, rect r, region *out)
{
    if (k == R->a) return gather(R, r, out);
    return apply(R, k - 1, r, out);
}

/* ---- Passes ----------------------------------------------------------------- */

/* The tile side at point p for an image-pixel tile side T: the same part
 * of the image at every resolution, but, for tiles of at least MIN_TILE
 * pixels, never under MIN_TILE pixels. A convolution call costs the
 * transform of its weights whatever its region, so regions of a few hundred
 * pixels at the low-resolution levels, where weights are largest and memory
 * cheapest, would spend their time there. Smaller tiles (asked for, or
 * chosen for a tiny budget) scale down all the way. */
#define MIN_TILE 64
static int32_t tile_at(const graph *g, point p, int32_t T)
{
    int64_t t = ((int64_t)T * p.h + g->img_h - 1) / g->img_h;
    if (T >= MIN_TILE && t < MIN_TILE) t = MIN_TILE;
    return t < 1 ? 1 : (int32_t)t;
}

/* Calls fn for each tile of a c x h x w point (or, dry, for one interior
 * tile, scaling its cost and counting its memory). */
typedef int32_t (*tile_fn)(runner *R, int k, int slot, rect r, region *out, void *user);

static int32_t for_tiles(runner *R, point p, int32_t t, int k, int slot, tile_fn fn, void *user)
{
    int32_t ny = (p.h + t - 1) / t, nx = (p.w + t - 1) / t;
    for (int32_t ty = 0; ty < ny; ty++)
        for (int32_t tx = 0; tx < nx; tx++) {
            if (R->dry) {
                /* an interior tile stands for all: the largest halo */
                ty = ny > 2 ? 1 : 0;
                tx = nx > 2 ? 1 : 0;
            }
            rect r = {ty * t, (ty + 1) * t, tx * t, (tx + 1) * t};
            if (r.y1 > p.h) r.y1 = p.h;
            if (r.x1 > p.w) r.x1 = p.w;
            double c0 = R->cost;
            region reg = {0};
            int32_t rc = fn(R, k, slot, r, &reg, user);
            reg_free(R, &reg);
            if (rc != VAE_OK) return rc;
            if (R->dry) {
                R->cost = c0 + (R->cost - c0) * (double)ny * (double)nx;
                return VAE_OK;
            }
        }
    return VAE_OK;
}

static int32_t stats_tile(runner *R, int k, int slot, rect r, region *out, void *user)
{
    (void)user;
    int32_t rc = slot ? eval_conv1(R, k, r, out) : eval_point(R, k, r, out);
    if (rc != VAE_OK || R->dry) return rc;
    vae_groupnorm_accumulate(R->ctx, out->c, R->m->arch.groups, out->p, area_h(r), area_w(r), 0,
                             area_h(r), 0, area_w(r), R->acc);
    return VAE_OK;
}

/* The statistics of norm `slot` of unit k (slot 0: of its input). */
static int32_t norm_stats(runner *R, int k, int slot, int32_t T, float eps)
{
    const graph *g = R->g;
    int32_t G = R->m->arch.groups, rc;
    point p = g->p[k];
    if (slot) p.c = g->u[k].cmid;
    if (!R->dry) memset(R->acc, 0, 3 * (size_t)G * sizeof *R->acc);
    if (slot == 0 && k == R->a) {
        /* stored: read it once */
        if (R->dry) return VAE_OK;
        vae_groupnorm_accumulate(R->ctx, p.c, G, R->src, p.h, p.w, 0, p.h, 0, p.w, R->acc);
    } else if ((rc = for_tiles(R, p, tile_at(g, p, T), k, slot, stats_tile, NULL)) != VAE_OK) {
        return rc;
    }
    if (!R->dry) {
        double *st = stats_of(R, k, slot);
        vae_groupnorm_finish(R->acc, G, eps, st, st + G);
    }
    return VAE_OK;
}

static int32_t store_tile(runner *R, int k, int slot, rect r, region *out, void *user)
{
    (void)slot;
    int32_t rc = eval_point(R, k, r, out);
    if (rc != VAE_OK || R->dry) return rc;
    point p = R->g->p[k];
    float *dst = user;
    for (int32_t c = 0; c < p.c; c++)
        for (int32_t y = r.y0; y < r.y1; y++)
            memcpy(dst + ((size_t)c * (size_t)p.h + (size_t)y) * (size_t)p.w + r.x0,
                   out->p + ((size_t)c * (size_t)area_h(r) + (size_t)(y - r.y0)) * (size_t)area_w(r),
                   (size_t)area_w(r) * sizeof(float));
    return VAE_OK;
}

/* Segment [a, b): src holds point a whole; dst receives point b whole. */
static int32_t run_segment(runner *R, int a, int b, const float *src, float *dst, int32_t T)
{
    const graph *g = R->g;
    const vae_arch *ar = &R->m->arch;
    int32_t rc;
    R->a = a;
    R->src = src;
    if (g->u[a].kind == U_ATTN) {
        point p = g->p[a];
        double np = (double)p.h * p.w, macs = 4.0 * p.c * np * (p.c + np);
        if (R->dry) {
            R->cost += macs;
            return VAE_OK;
        }
        const vae_attn *at = g->u[a].at;
        if (R->flash)
            rc = vae_attention_flash(R->ctx, &at->norm, ar->groups, ar->eps, &at->q, &at->k, &at->v,
                                     &at->proj, src, dst, p.h, p.w, R->err);
        else /* in place: dst holds a copy of src or is src */
            rc = vae_attention_lean(R->ctx, &at->norm, ar->groups, ar->eps, &at->q, &at->k, &at->v,
                                    &at->proj, dst, p.h, p.w, R->err);
        if (rc != VAE_OK) return rc;
        return done(R, macs);
    }
    for (int k = a; k < b; k++) {
        int kind = g->u[k].kind;
        if (kind == U_RES || kind == U_NORM)
            if ((rc = norm_stats(R, k, 0, T, ar->eps)) != VAE_OK) return rc;
        if (kind == U_RES && (rc = norm_stats(R, k, 1, T, ar->eps)) != VAE_OK) return rc;
    }
    point p = g->p[b];
    return for_tiles(R, p, tile_at(g, p, T), b, 0, store_tile, dst);
}

/* ---- The plan ------------------------------------------------------------- */

typedef struct seg_info {
    double cost;
    uint64_t bytes;   /* working memory besides the two stored points */
    /* attention only: the flash form's */
    double flash_cost;
    uint64_t flash_bytes;
} seg_info;

static uint64_t point_bytes(const graph *g, int k)
{
    return (uint64_t)g->p[k].c * (uint64_t)g->p[k].h * (uint64_t)g->p[k].w * sizeof(float);
}

/* Floats of scratch a convolution of at most c channels on either side
 * takes, whatever the tiling: vae_ctx's Winograd buffers (transformed
 * weights, per-thread transformed inputs and products), the weights widened
 * or packed for the call, and the per-thread GEMM panels and output chunks. */
static uint64_t conv_scratch_floats(uint64_t c, int n_threads)
{
    uint64_t nt = (uint64_t)n_threads;
    return (36 + 9 + 9) * c * c + nt * 36 * 64 * 2 * c + nt * VAE_GEMM_KC * (VAE_GEMM_NC + 64) +
           nt * c * VAE_GEMM_NC;
}

static uint64_t conv_scratch_bytes(const graph *g, int n_threads)
{
    uint64_t cmax = 0;
    for (int k = 0; k < g->n; k++) {
        const unit *u = &g->u[k];
        uint64_t ci = (uint64_t)(u->cmid > u->cin ? u->cmid : u->cin), co = (uint64_t)u->cout;
        if (ci < co) ci = co;
        if (ci > cmax) cmax = ci;
    }
    return conv_scratch_floats(cmax, n_threads) * sizeof(float);
}

static seg_info segment_info(const vae_model *m, const graph *g, int a, int b, int32_t T,
                             int circular, int n_threads)
{
    runner R;
    vae_ctx ctx;
    memset(&R, 0, sizeof R);
    memset(&ctx, 0, sizeof ctx);
    R.m = m;
    R.g = g;
    R.ctx = &ctx;
    R.dry = 1;
    R.circular = circular;
    seg_info s = {0, 0, 0, 0};
    if (g->u[a].kind == U_ATTN) {
        point p = g->p[a];
        double np = (double)p.h * p.w, chunks = ceil(np / (48.0 * 128));
        (void)run_segment(&R, a, b, NULL, NULL, T);
        s.cost = R.cost;
        s.bytes = vae_attention_lean_floats(p.c, (uint64_t)p.h * (uint64_t)p.w, n_threads, 64) *
                  sizeof(float);
        /* K and V again for every chunk of queries */
        s.flash_cost = R.cost + chunks * np * 2.0 * p.c * p.c;
        s.flash_bytes = vae_attention_flash_floats(p.c, n_threads, 64) * sizeof(float) +
                        point_bytes(g, b);
        return s;
    }
    (void)run_segment(&R, a, b, NULL, NULL, T);
    s.cost = R.cost;
    /* the real run's block cache may hold a quarter more (vae_run_tiled) */
    s.bytes = (R.peak + R.peak / 4) * sizeof(float);
    return s;
}

int32_t vae_tiled_plan(const vae_model *m, int dec, int32_t h, int32_t w, uint64_t budget,
                       int32_t force_tile, int circular, int n_threads, vae_tiled_plan_t *plan)
{
    graph *g = vae_malloc(sizeof *g);
    memset(plan, 0, sizeof *plan);
    if (!g) return VAE_ERR_NO_MEMORY;
    if (!build_graph(m, dec, h, w, g)) {
        free(g);
        return VAE_ERR_UNSUPPORTED;
    }
    int n = g->n;
    int32_t side = g->img_h > g->img_w ? g->img_h : g->img_w;
    int32_t cands[] = {0, 2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32, 24, 16, 8};
    int nc = (int)(sizeof cands / sizeof cands[0]);
    cands[0] = (side + 7) / 8 * 8;
    uint64_t scratch = conv_scratch_bytes(g, n_threads);
    double *best = vae_calloc_n((size_t)n + 1, sizeof *best);
    int *from = vae_calloc_n((size_t)n + 1, sizeof *from);
    uint64_t *peak = vae_calloc_n((size_t)n + 1, sizeof *peak);
    if (!best || !from || !peak) {
        free(g); free(best); free(from); free(peak);
        return VAE_ERR_NO_MEMORY;
    }
    uint64_t *mp = vae_calloc_n((size_t)n + 1, sizeof *mp);
    if (!mp) {
        free(g); free(best); free(from); free(peak);
        return VAE_ERR_NO_MEMORY;
    }
    unsigned char use_flash[VAE_MAX_UNITS + 1];
    memset(use_flash, 0, sizeof use_flash);
    plan->min_bytes = UINT64_MAX;
    for (int ci = 0; ci < nc; ci++) {
        int32_t T = cands[ci];
        if (force_tile > 0) {
            if (ci > 0) break;
            T = force_tile;
        } else if (ci > 0 && T >= cands[0]) {
            continue;
        }
        /* best[b]: least cost of points 0..b with b stored; peak[b] its
         * largest working set */
        for (int b = 1; b <= n; b++) {
            best[b] = -1;
            mp[b] = UINT64_MAX;
            for (int a = b - 1; a >= 0; a--) {
                if (a > 0 && best[a] < 0 && mp[a] == UINT64_MAX) continue;
                int has_attn = 0;
                for (int k = a; k < b; k++) has_attn |= g->u[k].kind == U_ATTN;
                if (has_attn && !(b == a + 1)) break;
                seg_info s = segment_info(m, g, a, b, T, circular, n_threads);
                int flash = 0;
                if (has_attn) {
                    /* the lean form when it fits, else the flash form */
                    uint64_t lean = (a > 0 ? point_bytes(g, a) : point_bytes(g, b)) + s.bytes + scratch;
                    if (lean > budget) {
                        flash = 1;
                        s.cost = s.flash_cost;
                        s.bytes = s.flash_bytes;
                    }
                }
                /* the two ends are stored, but not the caller's input
                 * (point 0) nor output (point n); attention works in place */
                uint64_t pts = (a > 0 ? point_bytes(g, a) : 0) +
                               (b < n && !has_attn ? point_bytes(g, b) : 0);
                if (has_attn && a == 0) pts += point_bytes(g, b);
                uint64_t bytes = pts + s.bytes + scratch;
                uint64_t pk = a > 0 && peak[a] > bytes ? peak[a] : bytes;
                /* mp[b]: the least peak any choice of checkpoints reaches */
                uint64_t mpk = a > 0 && mp[a] > bytes ? mp[a] : bytes;
                if (mpk < mp[b]) mp[b] = mpk;
                if (bytes > budget || (a > 0 && best[a] < 0)) continue;
                double c = (a > 0 ? best[a] : 0) + s.cost;
                if (best[b] < 0 || c < best[b]) {
                    best[b] = c;
                    from[b] = a;
                    peak[b] = pk;
                    use_flash[a] = (unsigned char)flash;
                }
            }
        }
        if (mp[n] < plan->min_bytes) {
            plan->min_bytes = mp[n];
            plan->min_tile = T;
        }
        if (best[n] >= 0 && (plan->cost == 0 || best[n] < plan->cost * 0.97)) {
            plan->cost = best[n];
            plan->tile = T;
            plan->bytes = peak[n];
            plan->n_ckpt = 0;
            for (int b = n; b > 0; b = from[b]) plan->n_ckpt++;
            int i = plan->n_ckpt;
            plan->ckpt[i] = n;
            for (int b = n; b > 0; b = from[b]) plan->ckpt[--i] = from[b];
            memcpy(plan->flash, use_flash, sizeof plan->flash);
        }
    }
    /* the untiled arithmetic, for the ratio: each unit once over its output */
    double base = 0;
    {
        for (int k = 0; k < n; k++) {
            const unit *u = &g->u[k];
            double px = (double)g->p[k + 1].h * g->p[k + 1].w;
            if (u->kind == U_CONV) base += conv_macs(u->cv) * px;
            else if (u->kind == U_NORM) base += 8.0 * u->cout * px;
            else if (u->kind == U_RES)
                base += (conv_macs(&u->res->conv1) + conv_macs(&u->res->conv2) +
                         (u->res->has_shortcut ? conv_macs(&u->res->shortcut) : 0)) * px;
            else base += 4.0 * u->cin * px * (u->cin + px);
        }
    }
    plan->base_cost = base;
    plan->fits = plan->cost > 0;
    free(mp);
    free(g);
    free(best);
    free(from);
    free(peak);
    return VAE_OK;
}

int32_t vae_run_tiled(const vae_model *m, vae_ctx *ctx, int dec, const float *in, int32_t h,
                      int32_t w, float *out, const vae_tiled_plan_t *plan, int circular,
                      vae_error *err)
{
    ctx->kt = m->kt; /* the kernels the weights were packed for */
    graph *g = vae_malloc(sizeof *g);
    if (!g) return vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory");
    if (!build_graph(m, dec, h, w, g)) {
        free(g);
        return vae_fail(err, VAE_ERR_UNSUPPORTED, "the network has more than %d layers", MAX_UNITS);
    }
    int32_t G = m->arch.groups, rc = VAE_OK;
    runner R;
    memset(&R, 0, sizeof R);
    R.m = m;
    R.ctx = ctx;
    R.err = err;
    R.g = g;
    R.circular = circular;
    R.stats = vae_calloc_n((size_t)g->n * 4 * (size_t)G, sizeof *R.stats);
    R.acc = vae_calloc_n(3 * (size_t)G, sizeof *R.acc);
    const float *cur = in;
    float *owned = NULL;
    if (!R.stats || !R.acc) {
        rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory");
        goto done_;
    }
    for (int i = 0; i < plan->n_ckpt; i++) {
        int a = plan->ckpt[i], b = plan->ckpt[i + 1];
        float *dst = out;
        int attn = g->u[a].kind == U_ATTN && !plan->flash[a];
        R.flash = plan->flash[a];
        if (attn && owned) {
            dst = owned; /* in place */
        } else if (b < g->n || attn) {
            if (!(dst = vae_alloc_floats((uint64_t)point_bytes(g, b) / sizeof(float)))) {
                rc = vae_fail(err, VAE_ERR_NO_MEMORY, "out of memory for a %d x %d x %d checkpoint",
                              g->p[b].c, g->p[b].h, g->p[b].w);
                goto done_;
            }
            if (attn) memcpy(dst, cur, point_bytes(g, a));
        }
        {
            /* the segment's region peak, from a dry run, bounds the cache */
            runner D = R;
            D.dry = 1;
            D.live = D.peak = 0;
            D.n_cache = 0;
            D.cost = 0;
            (void)run_segment(&D, a, b, cur, dst, plan->tile);
            R.limit = D.peak + D.peak / 4;
            cache_trim(&R, R.limit);
        }
        if ((rc = run_segment(&R, a, b, cur, dst, plan->tile)) != VAE_OK) {
            if (dst != out && dst != owned) vae_free_aligned(dst);
            goto done_;
        }
        if (dst != owned) {
            vae_free_aligned(owned);
            owned = dst == out ? NULL : dst;
        }
        cur = dst;
    }
    /* the last segment writes the caller's output, unless it worked in
     * place (an attention last, which no VAE has) */
    if (rc == VAE_OK && cur != out) memcpy(out, cur, point_bytes(g, g->n));
done_:
    cache_trim(&R, 0);
    vae_free_aligned(owned);
    free(R.stats);
    free(R.acc);
    free(g);
    return rc;
}

/* The working memory of the untiled pass (autoencoder.c): three buffers of
 * the largest activation, what the full attention allocates (its seven C x N
 * tensors and per-thread rows), and the convolutions' scratch. From the
 * architecture and the model's kernel tile: it allocates nothing and knows
 * no layer limit. */
uint64_t vae_untiled_bytes(const vae_model *m, int dec, int32_t h, int32_t w, int n_threads)
{
    const vae_arch *a = &m->arch;
    uint64_t cmax = (uint64_t)a->latent_channels * 2;
    for (int32_t l = 0; l < a->levels; l++)
        if ((uint64_t)a->ch[l] > cmax) cmax = (uint64_t)a->ch[l];
    int sh = dec ? 0 : a->levels - 1;
    uint64_t np = (uint64_t)(h >> sh) * (uint64_t)(w >> sh), c = (uint64_t)a->ch[a->levels - 1];
    uint64_t floats = 3 * vae_largest_activation(a, dec, h, w) + conv_scratch_floats(cmax, n_threads) +
                      vae_attention_floats((int32_t)c, np, n_threads, m->kt->gemm_mr, m->kt->gemm_nr);
    return floats * sizeof(float);
}
