/* TFLite's integer requantization (gemmlowp / tensorflow/lite/kernels/internal/common.h), shared by the reference
 * and the DSP-extension kernels: the same functions, so both round identically. */
#ifndef EP_REQUANT_H
#define EP_REQUANT_H
#include <stdint.h>

#define I32_MIN ((int32_t)0x80000000)
#define I32_MAX ((int32_t)0x7fffffff)

static inline int32_t srdhm(int32_t a, int32_t b) { /* SaturatingRoundingDoublingHighMul */
  if (a == b && a == I32_MIN) return I32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / (1ll << 31));
}

static inline int32_t rdbypot(int32_t x, int e) { /* RoundingDivideByPOT */
  int32_t mask = (int32_t)((1ll << e) - 1), rem = x & mask, thr = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (rem > thr ? 1 : 0);
}

static inline int32_t mbqm(int32_t x, int32_t m, int32_t shift) { /* MultiplyByQuantizedMultiplier */
  int ls = shift > 0 ? shift : 0, rs = shift > 0 ? 0 : -shift;
  return rdbypot(srdhm((int32_t)((uint32_t)x << ls), m), rs);
}

static inline int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

#endif
