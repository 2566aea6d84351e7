/* int8 kernels reproducing TFLite Micro's reference kernels (tensorflow/lite/kernels/internal/reference)
 * bit for bit: same accumulation order, same double-rounding MultiplyByQuantizedMultiplier, same gemmlowp
 * fixed-point exp/tanh/logistic. Multipliers and shifts are precomputed on the host exactly as TFLM's
 * Prepare() does (edgeprune/deploy/quant.py). Layout NHWC, batch folded into the leading dimension. */
#include "ep_kernels.h"

#include <string.h>

#include "ep_requant.h"

void ep_fc_ref(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
               const int32_t *shift, int per_channel, int batches, int depth, int units, int32_t in_off, int32_t out_off,
               int32_t act_min, int32_t act_max) {
  for (int b = 0; b < batches; b++) {
    const int8_t *x = in + b * depth;
    for (int o = 0; o < units; o++) {
      const int8_t *wr = w + o * depth;
      int32_t acc = 0;
      for (int d = 0; d < depth; d++) acc += (int32_t)wr[d] * ((int32_t)x[d] + in_off);
      if (bias) acc += bias[o];
      int k = per_channel ? o : 0;
      acc = mbqm(acc, mult[k], shift[k]) + out_off;
      out[b * units + o] = (int8_t)clamp(acc, act_min, act_max);
    }
  }
}

/* geo: batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
 *      filter_in_c */
void ep_conv_ref(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
                 const int32_t *shift, const int32_t *geo, int32_t in_off, int32_t out_off, int32_t act_min,
                 int32_t act_max) {
  const int nb = geo[0], ih = geo[1], iw = geo[2], ic = geo[3], oh = geo[4], ow = geo[5], oc = geo[6];
  const int kh = geo[7], kw = geo[8], sh = geo[9], sw = geo[10], dh = geo[11], dw = geo[12];
  const int ph = geo[13], pw = geo[14], fic = geo[15];
  const int per_group = oc / (ic / fic);
  for (int b = 0; b < nb; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int o = 0; o < oc; o++) {
          const int g = o / per_group, y0 = oy * sh - ph, x0 = ox * sw - pw;
          int32_t acc = 0;
          for (int fy = 0; fy < kh; fy++) {
            const int y = y0 + dh * fy;
            for (int fx = 0; fx < kw; fx++) {
              const int x = x0 + dw * fx;
              if (x < 0 || x >= iw || y < 0 || y >= ih) continue;
              const int8_t *ip = in + ((b * ih + y) * iw + x) * ic + g * fic;
              const int8_t *wp = w + ((o * kh + fy) * kw + fx) * fic;
              for (int c = 0; c < fic; c++) acc += (int32_t)wp[c] * ((int32_t)ip[c] + in_off);
            }
          }
          if (bias) acc += bias[o];
          acc = mbqm(acc, mult[o], shift[o]) + out_off;
          out[((b * oh + oy) * ow + ox) * oc + o] = (int8_t)clamp(acc, act_min, act_max);
        }
}

void ep_dwconv_ref(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
                   const int32_t *shift, const int32_t *geo, int depth_mult, int32_t in_off, int32_t out_off,
                   int32_t act_min, int32_t act_max) {
  const int nb = geo[0], ih = geo[1], iw = geo[2], ic = geo[3], oh = geo[4], ow = geo[5], oc = geo[6];
  const int kh = geo[7], kw = geo[8], sh = geo[9], sw = geo[10], dh = geo[11], dw = geo[12];
  const int ph = geo[13], pw = geo[14];
  for (int b = 0; b < nb; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int c = 0; c < ic; c++)
          for (int m = 0; m < depth_mult; m++) {
            const int o = m + c * depth_mult, y0 = oy * sh - ph, x0 = ox * sw - pw;
            int32_t acc = 0;
            for (int fy = 0; fy < kh; fy++) {
              const int y = y0 + dh * fy;
              for (int fx = 0; fx < kw; fx++) {
                const int x = x0 + dw * fx;
                if (x < 0 || x >= iw || y < 0 || y >= ih) continue;
                acc += (int32_t)w[(fy * kw + fx) * oc + o] * ((int32_t)in[((b * ih + y) * iw + x) * ic + c] + in_off);
              }
            }
            if (bias) acc += bias[o];
            acc = mbqm(acc, mult[o], shift[o]) + out_off;
            out[((b * oh + oy) * ow + ox) * oc + o] = (int8_t)clamp(acc, act_min, act_max);
          }
}

/* geo: batches, in_h, in_w, c, out_h, out_w, f_h, f_w, stride_h, stride_w, pad_h, pad_w */
void ep_avgpool(const int8_t *in, int8_t *out, const int32_t *geo, int32_t act_min, int32_t act_max) {
  const int nb = geo[0], ih = geo[1], iw = geo[2], ch = geo[3], oh = geo[4], ow = geo[5];
  const int fh = geo[6], fw = geo[7], sh = geo[8], sw = geo[9], ph = geo[10], pw = geo[11];
  for (int b = 0; b < nb; b++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int c = 0; c < ch; c++) {
          const int y0 = oy * sh - ph, x0 = ox * sw - pw;
          const int fy0 = y0 < 0 ? -y0 : 0, fy1 = fh < ih - y0 ? fh : ih - y0;
          const int fx0 = x0 < 0 ? -x0 : 0, fx1 = fw < iw - x0 ? fw : iw - x0;
          int32_t acc = 0, count = 0;
          for (int fy = fy0; fy < fy1; fy++)
            for (int fx = fx0; fx < fx1; fx++) {
              acc += in[((b * ih + y0 + fy) * iw + x0 + fx) * ch + c];
              count++;
            }
          if (count == 0) count = 1; /* TFLM returns an error here; never happens for valid padding */
          acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          out[((b * oh + oy) * ow + ox) * ch + c] = (int8_t)clamp(acc, act_min, act_max);
        }
}

/* Broadcast over up to 6 dims: bshape = {out dims[6], a strides[6], b strides[6]} (stride 0 = broadcast). */
#define EP_BROADCAST_LOOP(BODY)                                                                       \
  const int32_t *d = bshape, *sa = bshape + 6, *sb = bshape + 12;                                     \
  int k = 0;                                                                                          \
  for (int i0 = 0; i0 < d[0]; i0++)                                                                   \
    for (int i1 = 0; i1 < d[1]; i1++)                                                                 \
      for (int i2 = 0; i2 < d[2]; i2++)                                                               \
        for (int i3 = 0; i3 < d[3]; i3++)                                                             \
          for (int i4 = 0; i4 < d[4]; i4++)                                                           \
            for (int i5 = 0; i5 < d[5]; i5++, k++) {                                                  \
              const int32_t x = a[i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3] + i4 * sa[4] + i5 * sa[5]]; \
              const int32_t y = b[i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3] + i4 * sb[4] + i5 * sb[5]]; \
              BODY                                                                                    \
            }

/* p: a_off, a_mult, a_shift, b_off, b_mult, b_shift, left_shift, out_mult, out_shift, out_off, act_min, act_max;
 * kind 0: ADD, 1: SUB, 2: SQUARED_DIFFERENCE */
void ep_add(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *bshape, const int32_t *p, int kind) {
  EP_BROADCAST_LOOP({
    const int32_t sx = mbqm((int32_t)((uint32_t)(x + p[0]) << p[6]), p[1], p[2]);
    const int32_t sy = mbqm((int32_t)((uint32_t)(y + p[3]) << p[6]), p[4], p[5]);
    const int32_t v = kind == 0 ? sx + sy : kind == 1 ? sx - sy : (sx - sy) * (sx - sy);
    const int32_t r = mbqm(v, p[7], p[8]) + p[9];
    out[k] = (int8_t)clamp(r, p[10], p[11]);
  })
}

/* p: a_off, b_off, out_off, out_mult, out_shift, act_min, act_max */
void ep_mul(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *bshape, const int32_t *p) {
  EP_BROADCAST_LOOP({
    const int32_t r = p[2] + mbqm((x + p[0]) * (y + p[1]), p[3], p[4]);
    out[k] = (int8_t)clamp(r, p[5], p[6]);
  })
}

void ep_requantize(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift) {
  for (int i = 0; i < n; i++) out[i] = (int8_t)clamp(mbqm((int32_t)in[i] - in_zp, mult, shift) + out_zp, -128, 127);
}

void ep_lut(const int8_t *in, int8_t *out, int n, const int8_t *table) {
  for (int i = 0; i < n; i++) out[i] = table[(int)in[i] + 128];
}

void ep_copy(const int8_t *in, int8_t *out, int n) {
  if (in != out) memmove(out, in, (size_t)n);
}

void ep_concat(int8_t *out, int n_in, const int8_t *const *ins, const int32_t *inner, int outer) {
  for (int o = 0; o < outer; o++)
    for (int i = 0; i < n_in; i++) {
      memcpy(out, ins[i] + o * inner[i], (size_t)inner[i]);
      out += inner[i];
    }
}

/* dims/before/after: 6 entries each (leading 1s) */
void ep_pad(const int8_t *in, int8_t *out, const int32_t *dims, const int32_t *before, const int32_t *after,
            int8_t value) {
  int32_t od[6];
  for (int i = 0; i < 6; i++) od[i] = before[i] + dims[i] + after[i];
  int k = 0;
  for (int i0 = 0; i0 < od[0]; i0++)
    for (int i1 = 0; i1 < od[1]; i1++)
      for (int i2 = 0; i2 < od[2]; i2++)
        for (int i3 = 0; i3 < od[3]; i3++)
          for (int i4 = 0; i4 < od[4]; i4++)
            for (int i5 = 0; i5 < od[5]; i5++, k++) {
              const int32_t idx[6] = {i0 - before[0], i1 - before[1], i2 - before[2],
                                      i3 - before[3], i4 - before[4], i5 - before[5]};
              int inside = 1, flat = 0;
              for (int j = 0; j < 6; j++) {
                inside &= idx[j] >= 0 && idx[j] < dims[j];
                flat = flat * dims[j] + idx[j];
              }
              out[k] = inside ? in[flat] : value;
            }
}

/* dims: 6 input dims; reduce: 6 flags. Output is the input with reduced dims dropped (row-major order kept).
 * TFLM int8 MEAN (QuantizedMeanOrSum): sum of (x - in_zp) over the reduced elements, times the multiplier of
 * in_scale / out_scale readapted on the host to include 1/count, plus out_zp. */
void ep_mean(const int8_t *in, int8_t *out, const int32_t *dims, const int32_t *reduce, int32_t in_zp,
             int32_t out_zp, int32_t mult, int32_t shift) {
  int32_t od[6], n_out = 1, n_red = 1;
  for (int j = 0; j < 6; j++) {
    od[j] = reduce[j] ? 1 : dims[j];
    n_out *= od[j];
    if (reduce[j]) n_red *= dims[j];
  }
  for (int o = 0; o < n_out; o++) {
    int32_t oi[6], rem = o, sum = 0;
    for (int j = 5; j >= 0; j--) {
      oi[j] = rem % od[j];
      rem /= od[j];
    }
    for (int r = 0; r < n_red; r++) {
      int32_t ii[6], rr = r, flat = 0;
      for (int j = 5; j >= 0; j--) {
        if (reduce[j]) {
          ii[j] = rr % dims[j];
          rr /= dims[j];
        } else {
          ii[j] = oi[j];
        }
      }
      for (int j = 0; j < 6; j++) flat = flat * dims[j] + ii[j];
      sum += in[flat] - in_zp;
    }
    out[o] = (int8_t)clamp(mbqm(sum, mult, shift) + out_zp, -128, 127);
  }
}

/* ---- gemmlowp fixed point (int32 raw values) ---- */
static inline int32_t sat_shl(int32_t x, int e) { /* SaturatingRoundingMultiplyByPOT, e > 0 */
  const int32_t thr = (int32_t)((1u << (31 - e)) - 1);
  if (x > thr) return I32_MAX;
  if (x < -thr) return I32_MIN;
  return (int32_t)((uint32_t)x << e);
}

static int32_t exp_quarter(int32_t a) { /* exp on [-1/4, 0), Q0.31 */
  const int32_t c = 1895147668, third = 715827883;
  const int32_t x = a + (1 << 28);
  const int32_t x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2);
  const int32_t x4_4 = rdbypot(x4, 2);
  const int32_t poly = rdbypot(srdhm(x4_4 + x3, third) + x2, 1);
  return c + srdhm(c, x + poly);
}

static int32_t exp_neg(int32_t a, int ib) { /* exp(a) for a <= 0 in Q(ib).(31-ib); result Q0.31 */
  static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int fb = 31 - ib;
  const int32_t quarter = 1 << (fb - 2), mask = quarter - 1;
  const int32_t amq = (a & mask) - quarter;
  int32_t result = exp_quarter(ib ? sat_shl(amq, ib) : amq);
  const int32_t rem = amq - a;
  for (int e = -2; e <= 4; e++)
    if (ib > e && (rem & (1 << (fb + e)))) result = srdhm(result, mults[e + 2]);
  if (ib > 5 && a < -(1 << (36 - ib))) result = 0;
  return a == 0 ? I32_MAX : result;
}

static inline int32_t half_sum(int32_t a, int32_t b) { /* RoundingHalfSum */
  int64_t s = (int64_t)a + b;
  return (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
}

static int32_t newton_x(int32_t half_den) { /* three Newton-Raphson steps for 1/half_den, Q2.29 */
  int32_t x = 1515870810 + srdhm(half_den, -1010580540);
  for (int i = 0; i < 3; i++) {
    const int32_t one_minus = (1 << 29) - srdhm(half_den, x);
    x = x + sat_shl(srdhm(x, one_minus), 2);
  }
  return x;
}

static int32_t one_over_one_plus_x(int32_t a) { return sat_shl(newton_x(half_sum(a, I32_MAX)), 1); }

static int32_t one_minus_x_over_one_plus_x(int32_t a) {
  return sat_shl(newton_x(half_sum(a, I32_MAX)) - (1 << 29), 2);
}

static int32_t fx_tanh(int32_t a, int ib) {
  if (a == 0) return 0;
  const int32_t n = a < 0 ? a : -a;
  const int32_t t = one_minus_x_over_one_plus_x(exp_neg(n, ib + 1));
  return a < 0 ? -t : t;
}

static int32_t fx_logistic(int32_t a, int ib) {
  if (a == 0) return 1 << 30;
  const int32_t r = one_over_one_plus_x(exp_neg(a > 0 ? -a : a, ib)); /* logistic(|a|) */
  return a > 0 ? r : I32_MAX - r;
}

void ep_softmax(const int8_t *in, int8_t *out, int outer, int depth, int32_t mult, int32_t left_shift,
                int32_t diff_min) {
  for (int i = 0; i < outer; i++) {
    const int8_t *x = in + i * depth;
    int32_t mx = -128, sum = 0;
    for (int c = 0; c < depth; c++) mx = x[c] > mx ? x[c] : mx;
    for (int c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - mx;
      if (diff >= diff_min) sum += rdbypot(exp_neg(srdhm((int32_t)((uint32_t)diff << left_shift), mult), 5), 12);
    }
    const int headroom = sum == 0 ? 32 : __builtin_clz((uint32_t)sum);
    const int bits_over_unit = 12 - headroom;
    const int32_t shifted = (int32_t)(((uint32_t)sum << headroom) - (1u << 31));
    const int32_t scale = one_over_one_plus_x(shifted);
    for (int c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - mx;
      if (diff >= diff_min) {
        const int32_t e = exp_neg(srdhm((int32_t)((uint32_t)diff << left_shift), mult), 5);
        const int32_t v = rdbypot(srdhm(scale, e), bits_over_unit + 31 - 8) - 128;
        out[i * depth + c] = (int8_t)clamp(v, -128, 127);
      } else {
        out[i * depth + c] = -128;
      }
    }
  }
}

void ep_tanh(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t radius, int32_t mult, int32_t shift) {
  for (int i = 0; i < n; i++) {
    const int32_t x = (int32_t)in[i] - in_zp;
    if (x <= -radius) {
      out[i] = -128;
    } else if (x >= radius) {
      out[i] = 127;
    } else {
      const int32_t v = rdbypot(fx_tanh(mbqm(x, mult, shift), 4), 24);
      out[i] = (int8_t)clamp(v, -128, 127);
    }
  }
}

void ep_logistic(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t radius, int32_t mult, int32_t shift) {
  for (int i = 0; i < n; i++) {
    const int32_t x = (int32_t)in[i] - in_zp;
    if (x <= -radius) {
      out[i] = -128;
    } else if (x >= radius) {
      out[i] = 127;
    } else {
      const int32_t v = rdbypot(fx_logistic(mbqm(x, mult, shift), 4), 23) - 128;
      out[i] = (int8_t)clamp(v, -128, 127);
    }
  }
}
