// GF(2^8) kernels. See include/qlfec.h.
#include "qlfec.h"

#include <immintrin.h>
#include <string.h>

static uint8_t gf_exp[512];
static uint8_t gf_log[256];
static uint8_t gf_mul_table[256][256];
// AVX2 split tables: for coefficient c, bytes 0..15 = c·n, bytes 16..31 = c·(n << 4).
static uint8_t gf_split[256][32] __attribute__((aligned(32)));
// GFNI: the 8×8 bit matrix that multiplies by c, in vgf2p8affineqb's layout.
static uint64_t gf_affine[256];
static int active_kernel = QLFEC_KERNEL_SCALAR;

static uint8_t slow_mul(uint8_t a, uint8_t b) {
    uint8_t p = 0;
    while (b) {
        if (b & 1) p ^= a;
        uint8_t hi = a & 0x80;
        a <<= 1;
        if (hi) a ^= 0x1D;  // x^8 = x^4 + x^3 + x^2 + 1 (0x11D)
        b >>= 1;
    }
    return p;
}

static int best_kernel(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512f"))
        return QLFEC_KERNEL_GFNI512;
    if (__builtin_cpu_supports("avx2")) return QLFEC_KERNEL_AVX2;
    return QLFEC_KERNEL_SCALAR;
}

__attribute__((constructor)) static void qlfec_init(void) {
    uint8_t x = 1;
    for (int i = 0; i < 255; i++) {
        gf_exp[i] = x;
        gf_exp[i + 255] = x;
        gf_log[x] = (uint8_t)i;
        x = slow_mul(x, 2);
    }
    gf_exp[510] = gf_exp[0];
    gf_exp[511] = gf_exp[1];
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) gf_mul_table[a][b] = slow_mul((uint8_t)a, (uint8_t)b);
    for (int c = 0; c < 256; c++) {
        for (int n = 0; n < 16; n++) {
            gf_split[c][n] = gf_mul_table[c][n];
            gf_split[c][16 + n] = gf_mul_table[c][n << 4];
        }
        // Output bit i is the parity of (x & row_i) where bit j of row_i is bit i of c·2^j;
        // vgf2p8affineqb takes row_i from byte 7 - i of the qword.
        uint64_t m = 0;
        for (int i = 0; i < 8; i++) {
            uint8_t row = 0;
            for (int j = 0; j < 8; j++)
                if ((gf_mul_table[c][1 << j] >> i) & 1) row |= (uint8_t)(1 << j);
            m |= (uint64_t)row << (8 * (7 - i));
        }
        gf_affine[c] = m;
    }
    active_kernel = best_kernel();
}

uint8_t qlfec_mul(uint8_t a, uint8_t b) { return gf_mul_table[a][b]; }

uint8_t qlfec_inv(uint8_t a) { return a == 0 ? 0 : gf_exp[255 - gf_log[a]]; }

int qlfec_kernel(void) { return active_kernel; }

const char *qlfec_kernel_name(void) {
    switch (active_kernel) {
    case QLFEC_KERNEL_GFNI512: return "gfni-avx512";
    case QLFEC_KERNEL_AVX2: return "avx2";
    default: return "scalar";
    }
}

int qlfec_set_kernel(int which) {
    int best = best_kernel();
    if (which == QLFEC_KERNEL_AUTO || which > best) which = best;
    // AVX2 is a subset of the GFNI-512 machine's abilities, so any lower kernel is allowed.
    active_kernel = which;
    return active_kernel;
}

// ---------------------------------------------------------------- scalar

static void dot_scalar(size_t from, size_t len, int nsrc, int ndst, const uint8_t *coef,
                       const uint8_t *const *src, uint8_t *const *dst, int accumulate) {
    for (int o = 0; o < ndst; o++) {
        uint8_t *d = dst[o];
        if (!accumulate) memset(d + from, 0, len - from);
        for (int j = 0; j < nsrc; j++) {
            uint8_t c = coef[o * nsrc + j];
            if (c == 0) continue;
            const uint8_t *t = gf_mul_table[c];
            const uint8_t *s = src[j];
            for (size_t i = from; i < len; i++) d[i] ^= t[s[i]];
        }
    }
}

// ---------------------------------------------------------------- AVX2

__attribute__((target("avx2"), always_inline)) static inline void
dot_avx2_n(const int N, size_t len, int nsrc, const uint8_t *coef, int stride,
           const uint8_t *const *src, uint8_t *const *dst, int accumulate) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    size_t off = 0;
    for (; off + 32 <= len; off += 32) {
        __m256i acc[4];
        for (int o = 0; o < N; o++)
            acc[o] = accumulate ? _mm256_loadu_si256((const __m256i *)(dst[o] + off)) : _mm256_setzero_si256();
        for (int j = 0; j < nsrc; j++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(src[j] + off));
            __m256i lo = _mm256_and_si256(x, mask);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi64(x, 4), mask);
            for (int o = 0; o < N; o++) {
                const uint8_t *t = gf_split[coef[o * stride + j]];
                __m256i tl = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)t));
                __m256i th = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(t + 16)));
                acc[o] = _mm256_xor_si256(acc[o], _mm256_xor_si256(_mm256_shuffle_epi8(tl, lo),
                                                                   _mm256_shuffle_epi8(th, hi)));
            }
        }
        for (int o = 0; o < N; o++) _mm256_storeu_si256((__m256i *)(dst[o] + off), acc[o]);
    }
    if (off < len) {
        for (int o = 0; o < N; o++) {
            uint8_t *d = dst[o];
            for (size_t i = off; i < len; i++) {
                uint8_t v = accumulate ? d[i] : 0;
                for (int j = 0; j < nsrc; j++) v ^= gf_mul_table[coef[o * stride + j]][src[j][i]];
                d[i] = v;
            }
        }
    }
}

__attribute__((target("avx2"))) static void dot_avx2(size_t len, int nsrc, int ndst, const uint8_t *coef,
                                                     const uint8_t *const *src, uint8_t *const *dst,
                                                     int accumulate) {
    int o = 0;
    for (; o + 4 <= ndst; o += 4) dot_avx2_n(4, len, nsrc, coef + o * nsrc, nsrc, src, dst + o, accumulate);
    switch (ndst - o) {
    case 3: dot_avx2_n(3, len, nsrc, coef + o * nsrc, nsrc, src, dst + o, accumulate); break;
    case 2: dot_avx2_n(2, len, nsrc, coef + o * nsrc, nsrc, src, dst + o, accumulate); break;
    case 1: dot_avx2_n(1, len, nsrc, coef + o * nsrc, nsrc, src, dst + o, accumulate); break;
    default: break;
    }
}

// ---------------------------------------------------------------- GFNI + AVX-512

#define GFNI_TARGET __attribute__((target("avx512f,avx512bw,gfni")))

// One step of the column loop covers two 64-byte columns of every source, so each coefficient's
// matrix (looked up once per call into `mat`, outputs interleaved per source) serves 128 bytes.
GFNI_TARGET __attribute__((always_inline)) static inline void
dot_gfni_n(const int N, size_t len, int nsrc, const uint64_t *mat, const uint8_t *const *src, uint8_t *const *dst,
           int accumulate) {
    size_t off = 0;
    for (; off + 128 <= len; off += 128) {
        __m512i a0[6], a1[6];
        for (int o = 0; o < N; o++) {
            a0[o] = accumulate ? _mm512_loadu_si512(dst[o] + off) : _mm512_setzero_si512();
            a1[o] = accumulate ? _mm512_loadu_si512(dst[o] + off + 64) : _mm512_setzero_si512();
        }
        for (int j = 0; j < nsrc; j++) {
            __m512i x0 = _mm512_loadu_si512(src[j] + off);
            __m512i x1 = _mm512_loadu_si512(src[j] + off + 64);
            for (int o = 0; o < N; o++) {
                __m512i m = _mm512_set1_epi64((long long)mat[j * N + o]);
                a0[o] = _mm512_xor_si512(a0[o], _mm512_gf2p8affine_epi64_epi8(x0, m, 0));
                a1[o] = _mm512_xor_si512(a1[o], _mm512_gf2p8affine_epi64_epi8(x1, m, 0));
            }
        }
        for (int o = 0; o < N; o++) {
            _mm512_storeu_si512(dst[o] + off, a0[o]);
            _mm512_storeu_si512(dst[o] + off + 64, a1[o]);
        }
    }
    for (; off < len; off += 64) {
        size_t rest = len - off;
        __mmask64 k = rest >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << rest) - 1);
        __m512i acc[6];
        for (int o = 0; o < N; o++)
            acc[o] = accumulate ? _mm512_maskz_loadu_epi8(k, dst[o] + off) : _mm512_setzero_si512();
        for (int j = 0; j < nsrc; j++) {
            __m512i x = _mm512_maskz_loadu_epi8(k, src[j] + off);
            for (int o = 0; o < N; o++) {
                __m512i m = _mm512_set1_epi64((long long)mat[j * N + o]);
                acc[o] = _mm512_xor_si512(acc[o], _mm512_gf2p8affine_epi64_epi8(x, m, 0));
            }
        }
        for (int o = 0; o < N; o++) _mm512_mask_storeu_epi8(dst[o] + off, k, acc[o]);
    }
}

// Reads one byte of every cache line of the sources, in address order.
//
// The column loop reads all sources at once (128 streams for k = 128), more than the hardware
// prefetchers follow: on a block that is no longer in cache (a repair, sent seconds after the
// pass read it) every column waits on memory. One sequential pass first brings the block into
// L2 at streaming speed. Measured on the EPYC VM, k = 128, 1,440-byte symbols: 1.8–2.8 × faster
// on a cold block, ≈ 10 % slower on a block already in cache.
static uint8_t warm_sources(size_t len, int nsrc, const uint8_t *const *src) {
    uint8_t seen = 0;
    for (int j = 0; j < nsrc; j++)
        for (size_t off = 0; off < len; off += 64) seen ^= ((const volatile uint8_t *)src[j])[off];
    return seen;
}

#define GFNI_MAX_SOURCES 255

GFNI_TARGET static void dot_gfni(size_t len, int nsrc, int ndst, const uint8_t *coef,
                                 const uint8_t *const *src, uint8_t *const *dst, int accumulate) {
    // More sources than one matrix holds (no caller has them; a code has at most 255 symbols):
    // the first share as asked, the rest added on top.
    if (nsrc > GFNI_MAX_SOURCES) {
        uint8_t part[GFNI_MAX_SOURCES * 6];
        for (int j0 = 0; j0 < nsrc; j0 += GFNI_MAX_SOURCES) {
            int m = nsrc - j0 < GFNI_MAX_SOURCES ? nsrc - j0 : GFNI_MAX_SOURCES;
            for (int o = 0; o < ndst; o += 6) {
                int n = ndst - o < 6 ? ndst - o : 6;
                for (int q = 0; q < n; q++) memcpy(part + q * m, coef + (o + q) * nsrc + j0, (size_t)m);
                dot_gfni(len, m, n, part, src + j0, dst + o, j0 == 0 ? accumulate : 1);
            }
        }
        return;
    }
    uint64_t mat[GFNI_MAX_SOURCES * 6];
    (void)warm_sources(len, nsrc, src);
    for (int o = 0; o < ndst; o += 6) {
        int n = ndst - o < 6 ? ndst - o : 6;
        for (int j = 0; j < nsrc; j++)
            for (int q = 0; q < n; q++) mat[j * n + q] = gf_affine[coef[(o + q) * nsrc + j]];
        switch (n) {
        case 6: dot_gfni_n(6, len, nsrc, mat, src, dst + o, accumulate); break;
        case 5: dot_gfni_n(5, len, nsrc, mat, src, dst + o, accumulate); break;
        case 4: dot_gfni_n(4, len, nsrc, mat, src, dst + o, accumulate); break;
        case 3: dot_gfni_n(3, len, nsrc, mat, src, dst + o, accumulate); break;
        case 2: dot_gfni_n(2, len, nsrc, mat, src, dst + o, accumulate); break;
        default: dot_gfni_n(1, len, nsrc, mat, src, dst + o, accumulate); break;
        }
    }
}

// ---------------------------------------------------------------- dispatch

void qlfec_dot(size_t len, int nsrc, int ndst, const uint8_t *coef, const uint8_t *const *src,
               uint8_t *const *dst, int accumulate) {
    if (ndst <= 0 || len == 0) return;
    switch (active_kernel) {
    case QLFEC_KERNEL_GFNI512: dot_gfni(len, nsrc, ndst, coef, src, dst, accumulate); break;
    case QLFEC_KERNEL_AVX2: dot_avx2(len, nsrc, ndst, coef, src, dst, accumulate); break;
    default: dot_scalar(0, len, nsrc, ndst, coef, src, dst, accumulate); break;
    }
}

void qlfec_mul_add(size_t len, uint8_t c, const uint8_t *src, uint8_t *dst) {
    const uint8_t *s[1] = {src};
    uint8_t *d[1] = {dst};
    qlfec_dot(len, 1, 1, &c, s, d, 1);
}

// ---------------------------------------------------------------- matrices

int qlfec_cauchy_inverse(const uint8_t *x, const uint8_t *y, int n, uint8_t *out) {
    // For C[i][j] = 1/(x_i + y_j) (characteristic 2: minus is plus),
    //   inv[i][j] = a_j · b_i / ((x_j + y_i) · c_j · d_i)
    // with a_j = Π_k (x_j + y_k), b_i = Π_k (x_k + y_i),
    //      c_j = Π_{k≠j} (x_j + x_k), d_i = Π_{k≠i} (y_i + y_k).
    uint8_t a[256], b[256], c[256], d[256];
    if (n <= 0 || n > 255) return -1;
    for (int j = 0; j < n; j++) {
        uint8_t pa = 1, pc = 1, pb = 1, pd = 1;
        for (int k = 0; k < n; k++) {
            uint8_t s = x[j] ^ y[k];
            if (s == 0) return -1;
            pa = gf_mul_table[pa][s];
            pb = gf_mul_table[pb][x[k] ^ y[j]];
            if (k != j) {
                if ((x[j] ^ x[k]) == 0 || (y[j] ^ y[k]) == 0) return -1;
                pc = gf_mul_table[pc][x[j] ^ x[k]];
                pd = gf_mul_table[pd][y[j] ^ y[k]];
            }
        }
        a[j] = pa;
        b[j] = pb;
        c[j] = pc;
        d[j] = pd;
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            uint8_t num = gf_mul_table[a[j]][b[i]];
            uint8_t den = gf_mul_table[gf_mul_table[x[j] ^ y[i]][c[j]]][d[i]];
            out[i * n + j] = gf_mul_table[num][qlfec_inv(den)];
        }
    }
    return 0;
}

int qlfec_invert(uint8_t *m, int n) {
    uint8_t aug[255 * 255];
    if (n <= 0 || n > 255) return -1;
    memset(aug, 0, (size_t)n * (size_t)n);
    for (int i = 0; i < n; i++) aug[i * n + i] = 1;
    for (int col = 0; col < n; col++) {
        int piv = col;
        while (piv < n && m[piv * n + col] == 0) piv++;
        if (piv == n) return -1;
        if (piv != col) {
            for (int k = 0; k < n; k++) {
                uint8_t t = m[col * n + k]; m[col * n + k] = m[piv * n + k]; m[piv * n + k] = t;
                t = aug[col * n + k]; aug[col * n + k] = aug[piv * n + k]; aug[piv * n + k] = t;
            }
        }
        uint8_t inv = qlfec_inv(m[col * n + col]);
        for (int k = 0; k < n; k++) {
            m[col * n + k] = gf_mul_table[inv][m[col * n + k]];
            aug[col * n + k] = gf_mul_table[inv][aug[col * n + k]];
        }
        for (int r = 0; r < n; r++) {
            if (r == col) continue;
            uint8_t f = m[r * n + col];
            if (f == 0) continue;
            for (int k = 0; k < n; k++) {
                m[r * n + k] ^= gf_mul_table[f][m[col * n + k]];
                aug[r * n + k] ^= gf_mul_table[f][aug[col * n + k]];
            }
        }
    }
    memcpy(m, aug, (size_t)n * (size_t)n);
    return 0;
}
