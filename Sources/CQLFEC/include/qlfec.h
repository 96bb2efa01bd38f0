// Reed–Solomon arithmetic over GF(2^8) (polynomial 0x11D) with vector kernels.
//
// The Swift FEC layer builds matrices and chooses symbols; this target only does the
// arithmetic that must run on the CPU's vector units, chosen once at run time:
// GFNI on 512-bit vectors, AVX2 split-table shuffles, or a portable table loop.
#ifndef QLFEC_H
#define QLFEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Kernel identifiers for `qlfec_set_kernel` / `qlfec_kernel`.
enum {
    QLFEC_KERNEL_AUTO = 0,
    QLFEC_KERNEL_SCALAR = 1,
    QLFEC_KERNEL_AVX2 = 2,
    QLFEC_KERNEL_GFNI512 = 3,
};

/// Product of two field elements.
uint8_t qlfec_mul(uint8_t a, uint8_t b);
/// Multiplicative inverse; `qlfec_inv(0)` is 0 (callers never ask for it).
uint8_t qlfec_inv(uint8_t a);

/// The kernel in use (one of QLFEC_KERNEL_*).
int qlfec_kernel(void);
/// Human-readable name of the kernel in use ("gfni-avx512", "avx2", "scalar").
const char *qlfec_kernel_name(void);
/// Selects a kernel; AUTO picks the best the CPU supports. Returns the kernel now in use,
/// which is the requested one only if the CPU supports it.
int qlfec_set_kernel(int which);

/// Matrix–vector product over symbols:
///   dst[o][0..<len] = (accumulate ? dst[o] : 0) ^ Σ_j coef[o * nsrc + j] · src[j][0..<len]
/// for o in 0..<ndst, j in 0..<nsrc. Buffers may be unaligned; dst must not alias src.
void qlfec_dot(size_t len, int nsrc, int ndst, const uint8_t *coef,
               const uint8_t *const *src, uint8_t *const *dst, int accumulate);

/// dst ^= c · src over len bytes.
void qlfec_mul_add(size_t len, uint8_t c, const uint8_t *src, uint8_t *dst);

/// Inverse of the n×n Cauchy matrix C[i][j] = 1 / (x[i] ^ y[j]) in closed form (O(n²)).
/// All x and y must be distinct from each other. Writes n*n bytes, row major.
/// Returns 0, or -1 if an x equals a y or values repeat.
int qlfec_cauchy_inverse(const uint8_t *x, const uint8_t *y, int n, uint8_t *out);

/// Gauss–Jordan inversion of a general n×n matrix in place. Returns 0, or -1 if singular.
int qlfec_invert(uint8_t *m, int n);

#ifdef __cplusplus
}
#endif

#endif
