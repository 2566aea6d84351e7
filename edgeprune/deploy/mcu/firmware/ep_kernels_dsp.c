/* int8 FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D for cores with the Armv7E-M DSP extension (Cortex-M4/M7),
 * bit-exact with TFLite Micro's reference kernels (ep_kernels.c): the same integer sums, accumulated in another
 * order (exact in int32), then the same requantization (ep_requant.h).
 *
 * FC and CONV_2D: the input is widened once to 16 bits with its offset added (x + in_off fits in 16 bits) into
 * ep_scratch, an im2col column per output pixel for convolutions (padding: 0, i.e. skipped), stored as
 * (x0,x2),(x1,x3) per 4 elements, the order SXTB16 yields the weights in; each 4 weights are one 32-bit load, two
 * SXTB16 and two SMLAD, two output channels per pass sharing the column loads. DEPTHWISE_CONV_2D (depth multiplier
 * 1): 4 channels per 32-bit load of input and weights, SXTB16 + SADD16 to widen, one SMLABB/SMLATT per channel;
 * the accumulators stay in registers over the filter window. */
#include "ep_kernels.h"

#ifdef EP_DSP
#include <string.h>

#include "ep_requant.h"

#ifndef EP_DSP_PORTABLE
#include <arm_acle.h>
static inline int32_t sxtb16(int32_t x) { return __sxtb16(x); } /* bytes 0, 2 -> halfwords; _ror8: bytes 1, 3 */
static inline int32_t sxtb16_ror8(int32_t x) { /* one instruction: GCC does not fold the rotation itself */
  int32_t r;
  __asm("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t sadd16(int32_t a, int32_t b) { return __sadd16(a, b); }
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
static inline int32_t smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
#else /* EP_DSP_PORTABLE: what the instructions compute, in C (modulo 2^32 / 2^16 like the hardware) */
static inline int32_t lo16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x & 0xFFFFu); }
static inline int32_t hi16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x >> 16); }
static inline int32_t pack16(int32_t lo, int32_t hi) { return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu)); }
static inline int32_t sxtb16(int32_t x) { return pack16((int8_t)(x & 0xFF), (int8_t)(((uint32_t)x >> 16) & 0xFF)); }
static inline int32_t sxtb16_ror8(int32_t x) { return sxtb16((int32_t)((uint32_t)x >> 8 | (uint32_t)x << 24)); }
static inline int32_t sadd16(int32_t a, int32_t b) { return pack16(lo16(a) + lo16(b), hi16(a) + hi16(b)); }
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(lo16(a) * lo16(b)) + (uint32_t)(hi16(a) * hi16(b)));
}
static inline int32_t smlabb(int32_t a, int32_t b, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)(lo16(a) * lo16(b))); }
static inline int32_t smlatt(int32_t a, int32_t b, int32_t acc) { return (int32_t)((uint32_t)acc + (uint32_t)(hi16(a) * hi16(b))); }
#endif

static inline int32_t ld32(const void *p) { /* unaligned 32-bit load (LDR allows it on M4/M7) */
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline void st32(void *p, int32_t v) { memcpy(p, &v, 4); }

static inline int32_t pair(int32_t v) { return (int32_t)(((uint32_t)v & 0xFFFFu) * 0x10001u); }

/* n bytes of x, plus off, widened to 16 bits into col at element k0 of a column whose first k4 elements are in
 * (x0,x2),(x1,x3) order per 4 (k4 = column length rounded down to 4; the rest in order). */
static void widen(const int8_t *x, int n, int32_t off, int16_t *col, int k0, int k4) {
  int j = 0;
  if ((k0 & 3) == 0) {
    const int32_t off2 = pair(off);
    for (; j + 4 <= n && k0 + j + 4 <= k4; j += 4) {
      const int32_t v = ld32(x + j);
      st32(col + k0 + j, sadd16(sxtb16(v), off2));
      st32(col + k0 + j + 2, sadd16(sxtb16_ror8(v), off2));
    }
  }
  for (; j < n; j++) {
    const int k = k0 + j;
    col[k < k4 ? (k & ~3) | (k & 1) << 1 | (k >> 1 & 1) : k] = (int16_t)(x[j] + off);
  }
}

static void zero(int n, int16_t *col, int k0, int k4) {
  for (int j = 0; j < n; j++) {
    const int k = k0 + j;
    col[k < k4 ? (k & ~3) | (k & 1) << 1 | (k >> 1 & 1) : k] = 0;
  }
}

/* Dot products of two weight rows w0, w1 (n int8) with the column: *a0 += w0 . col, *a1 += w1 . col. */
static inline void dot2(const int8_t *w0, const int8_t *w1, const int16_t *col, int n, int32_t *a0, int32_t *a1) {
  int32_t s0 = *a0, s1 = *a1;
  int k = 0;
  for (; k + 4 <= n; k += 4) {
    const int32_t c02 = ld32(col + k), c13 = ld32(col + k + 2);
    const int32_t v0 = ld32(w0 + k), v1 = ld32(w1 + k);
    s0 = smlad(sxtb16(v0), c02, s0);
    s0 = smlad(sxtb16_ror8(v0), c13, s0);
    s1 = smlad(sxtb16(v1), c02, s1);
    s1 = smlad(sxtb16_ror8(v1), c13, s1);
  }
  for (; k < n; k++) {
    s0 += w0[k] * col[k];
    s1 += w1[k] * col[k];
  }
  *a0 = s0;
  *a1 = s1;
}

/* Two weight rows against two columns: four sums per pass over the rows (each load used twice). */
static inline void dot22(const int8_t *w0, const int8_t *w1, const int16_t *ca, const int16_t *cb, int n, int32_t *s) {
  int32_t s0a = s[0], s0b = s[1], s1a = s[2], s1b = s[3];
  int k = 0;
  for (; k + 4 <= n; k += 4) {
    const int32_t a02 = ld32(ca + k), a13 = ld32(ca + k + 2), b02 = ld32(cb + k), b13 = ld32(cb + k + 2);
    const int32_t v0 = ld32(w0 + k), e0 = sxtb16(v0), o0 = sxtb16_ror8(v0);
    s0a = smlad(o0, a13, smlad(e0, a02, s0a));
    s0b = smlad(o0, b13, smlad(e0, b02, s0b));
    const int32_t v1 = ld32(w1 + k), e1 = sxtb16(v1), o1 = sxtb16_ror8(v1);
    s1a = smlad(o1, a13, smlad(e1, a02, s1a));
    s1b = smlad(o1, b13, smlad(e1, b02, s1b));
  }
  for (; k < n; k++) {
    s0a += w0[k] * ca[k];
    s0b += w0[k] * cb[k];
    s1a += w1[k] * ca[k];
    s1b += w1[k] * cb[k];
  }
  s[0] = s0a;
  s[1] = s0b;
  s[2] = s1a;
  s[3] = s1b;
}

static inline int32_t dot1(const int8_t *w, const int16_t *col, int n, int32_t s) {
  int k = 0;
  for (; k + 4 <= n; k += 4) {
    const int32_t v = ld32(w + k);
    s = smlad(sxtb16(v), ld32(col + k), s);
    s = smlad(sxtb16_ror8(v), ld32(col + k + 2), s);
  }
  for (; k < n; k++) s += w[k] * col[k];
  return s;
}

static inline int8_t requant(int32_t acc, int32_t m, int32_t s, int32_t out_off, int32_t lo, int32_t hi) {
  return (int8_t)clamp(mbqm(acc, m, s) + out_off, lo, hi);
}

/* Every output channel of one column (an output pixel, or an FC batch row) of length n. */
static void channels(const int16_t *col, int n, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
                     const int32_t *shift, int per_channel, int oc, int32_t out_off, int32_t lo, int32_t hi) {
  int o = 0;
  for (; o + 2 <= oc; o += 2) {
    int32_t a0 = bias ? bias[o] : 0, a1 = bias ? bias[o + 1] : 0;
    dot2(w + o * n, w + (o + 1) * n, col, n, &a0, &a1);
    const int k0 = per_channel ? o : 0, k1 = per_channel ? o + 1 : 0;
    out[o] = requant(a0, mult[k0], shift[k0], out_off, lo, hi);
    out[o + 1] = requant(a1, mult[k1], shift[k1], out_off, lo, hi);
  }
  if (o < oc) {
    const int k = per_channel ? o : 0;
    out[o] = requant(dot1(w + o * n, col, n, bias ? bias[o] : 0), mult[k], shift[k], out_off, lo, hi);
  }
}

/* Every output channel of two columns ca, cb (two output pixels) of length n: per-channel multipliers. */
static void channels2(const int16_t *ca, const int16_t *cb, int n, int8_t *oa, int8_t *ob, const int8_t *w,
                      const int32_t *bias, const int32_t *mult, const int32_t *shift, int oc, int32_t out_off,
                      int32_t lo, int32_t hi) {
  int o = 0;
  for (; o + 2 <= oc; o += 2) {
    const int32_t b0 = bias ? bias[o] : 0, b1 = bias ? bias[o + 1] : 0;
    int32_t s[4] = {b0, b0, b1, b1};
    dot22(w + o * n, w + (o + 1) * n, ca, cb, n, s);
    oa[o] = requant(s[0], mult[o], shift[o], out_off, lo, hi);
    ob[o] = requant(s[1], mult[o], shift[o], out_off, lo, hi);
    oa[o + 1] = requant(s[2], mult[o + 1], shift[o + 1], out_off, lo, hi);
    ob[o + 1] = requant(s[3], mult[o + 1], shift[o + 1], out_off, lo, hi);
  }
  if (o < oc) {
    const int32_t b0 = bias ? bias[o] : 0;
    oa[o] = requant(dot1(w + o * n, ca, n, b0), mult[o], shift[o], out_off, lo, hi);
    ob[o] = requant(dot1(w + o * n, cb, n, b0), mult[o], shift[o], out_off, lo, hi);
  }
}

void ep_fc(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
           const int32_t *shift, int per_channel, int batches, int depth, int units, int32_t in_off, int32_t out_off,
           int32_t act_min, int32_t act_max) {
  for (int b = 0; b < batches; b++) {
    widen(in + b * depth, depth, in_off, ep_scratch, 0, depth & ~3);
    channels(ep_scratch, depth, out + b * units, w, bias, mult, shift, per_channel, units, out_off, act_min, act_max);
  }
}

/* The im2col column of output pixel p (flat over batch, rows, columns) of a convolution (geo as ep_conv). */
static void im2col(const int8_t *in, const int32_t *geo, int p, int32_t in_off, int16_t *col, int n4) {
  const int ih = geo[1], iw = geo[2], ic = geo[3], oh = geo[4], ow = geo[5], kh = geo[7], kw = geo[8];
  const int sh = geo[9], sw = geo[10], dh = geo[11], dw = geo[12], ph = geo[13], pw = geo[14];
  const int ox = p % ow, oy = p / ow % oh, b = p / (ow * oh);
  for (int fy = 0; fy < kh; fy++) {
    const int y = oy * sh - ph + dh * fy;
    for (int fx = 0; fx < kw; fx++) {
      const int x = ox * sw - pw + dw * fx, k0 = (fy * kw + fx) * ic;
      if (x < 0 || x >= iw || y < 0 || y >= ih) {
        zero(ic, col, k0, n4);
      } else {
        widen(in + ((b * ih + y) * iw + x) * ic, ic, in_off, col, k0, n4);
      }
    }
  }
}

void ep_conv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
             const int32_t *shift, const int32_t *geo, int32_t in_off, int32_t out_off, int32_t act_min,
             int32_t act_max) {
  const int nb = geo[0], oh = geo[4], ow = geo[5], oc = geo[6], kh = geo[7], kw = geo[8], ic = geo[3];
  if (geo[15] != ic) { /* grouped */
    ep_conv_ref(in, out, w, bias, mult, shift, geo, in_off, out_off, act_min, act_max);
    return;
  }
  const int n = kh * kw * ic, n4 = n & ~3, pixels = nb * oh * ow;
  int p = 0;
  for (; p + 2 <= pixels; p += 2) { /* two output pixels per pass: their columns side by side in ep_scratch */
    im2col(in, geo, p, in_off, ep_scratch, n4);
    im2col(in, geo, p + 1, in_off, ep_scratch + n, n4);
    channels2(ep_scratch, ep_scratch + n, n, out + p * oc, out + (p + 1) * oc, w, bias, mult, shift, oc, out_off,
              act_min, act_max);
  }
  if (p < pixels) {
    im2col(in, geo, p, in_off, ep_scratch, n4);
    channels(ep_scratch, n, out + p * oc, w, bias, mult, shift, 1, oc, out_off, act_min, act_max);
  }
}

void ep_dwconv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
               const int32_t *shift, const int32_t *geo, int depth_mult, int32_t in_off, int32_t out_off,
               int32_t act_min, int32_t act_max) {
  if (depth_mult != 1) {
    ep_dwconv_ref(in, out, w, bias, mult, shift, geo, depth_mult, in_off, out_off, act_min, act_max);
    return;
  }
  const int nb = geo[0], ih = geo[1], iw = geo[2], ch = geo[3], oh = geo[4], ow = geo[5];
  const int kh = geo[7], kw = geo[8], sh = geo[9], sw = geo[10], dh = geo[11], dw = geo[12];
  const int ph = geo[13], pw = geo[14];
  const int32_t off2 = pair(in_off);
  for (int b = 0; b < nb; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        const int y0 = oy * sh - ph, x0 = ox * sw - pw;
        /* the filter taps inside the input: fy in [fy0, fy1), fx in [fx0, fx1) */
        const int fy0 = y0 < 0 ? (-y0 + dh - 1) / dh : 0, fx0 = x0 < 0 ? (-x0 + dw - 1) / dw : 0;
        const int fy1 = ih - y0 <= 0 ? 0 : kh < (ih - y0 + dh - 1) / dh ? kh : (ih - y0 + dh - 1) / dh;
        const int fx1 = iw - x0 <= 0 ? 0 : kw < (iw - x0 + dw - 1) / dw ? kw : (iw - x0 + dw - 1) / dw;
        const int8_t *ip = in + (b * ih * iw) * ch, *wp = w;
        int8_t *op = out + ((b * oh + oy) * ow + ox) * ch;
        int c = 0;
        for (; c + 4 <= ch; c += 4, ip += 4, wp += 4) {
          int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
          for (int fy = fy0; fy < fy1; fy++) {
            const int row = ((y0 + dh * fy) * iw + x0) * ch; /* may be < 0: only taps inside are added to it */
            const int8_t *frow = wp + fy * kw * ch;
            for (int fx = fx0; fx < fx1; fx++) {
              const int32_t v = ld32(ip + row + dw * fx * ch), f = ld32(frow + fx * ch);
              const int32_t x02 = sadd16(sxtb16(v), off2), x13 = sadd16(sxtb16_ror8(v), off2);
              const int32_t f02 = sxtb16(f), f13 = sxtb16_ror8(f);
              a0 = smlabb(x02, f02, a0);
              a2 = smlatt(x02, f02, a2);
              a1 = smlabb(x13, f13, a1);
              a3 = smlatt(x13, f13, a3);
            }
          }
          const int32_t acc[4] = {a0, a1, a2, a3};
          for (int j = 0; j < 4; j++)
            op[c + j] = requant(acc[j] + (bias ? bias[c + j] : 0), mult[c + j], shift[c + j], out_off, act_min, act_max);
        }
        for (; c < ch; c++, ip++, wp++) {
          int32_t acc = 0;
          for (int fy = fy0; fy < fy1; fy++)
            for (int fx = fx0; fx < fx1; fx++)
              acc += wp[(fy * kw + fx) * ch] * (ip[((y0 + dh * fy) * iw + x0 + dw * fx) * ch] + in_off);
          op[c] = requant(acc + (bias ? bias[c] : 0), mult[c], shift[c], out_off, act_min, act_max);
        }
      }
}
#endif
