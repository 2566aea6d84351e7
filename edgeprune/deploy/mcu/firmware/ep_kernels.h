/* int8 kernels reproducing TFLite Micro's reference kernels bit for bit (edgeprune AOT). */
#ifndef EP_KERNELS_H
#define EP_KERNELS_H
#include <stdint.h>

typedef struct { int32_t n, h, w, c; } ep_shape4;

/* The reference loops for FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D (ep_kernels.c). */
void ep_fc_ref(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
               const int32_t *shift, int per_channel, int batches, int depth, int units, int32_t in_off, int32_t out_off,
               int32_t act_min, int32_t act_max);
void ep_conv_ref(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
                 const int32_t *shift, const int32_t *geo, int32_t in_off, int32_t out_off, int32_t act_min,
                 int32_t act_max);
void ep_dwconv_ref(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
                   const int32_t *shift, const int32_t *geo, int depth_mult, int32_t in_off, int32_t out_off,
                   int32_t act_min, int32_t act_max);

/* What the generated model calls. On cores with the DSP extension (Cortex-M4/M7: __ARM_FEATURE_DSP) unless
 * EP_REFERENCE_KERNELS is defined, or on the host with EP_DSP_PORTABLE (the same code with C stand-ins for the
 * instructions, for bit-exactness checks), the DSP-extension kernels of ep_kernels_dsp.c: dual 16-bit multiply-accumulates (SMLAD) on sign-extended byte pairs
 * (SXTB16), im2col for convolutions; they fall back to the reference loops for grouped convolutions and depth
 * multipliers > 1. Elsewhere (Cortex-M0+, host) the reference loops. Both give the same bytes: integer sums in
 * another order, the same requantization. */
#if (defined(__ARM_FEATURE_DSP) && !defined(EP_REFERENCE_KERNELS)) || defined(EP_DSP_PORTABLE)
#define EP_DSP 1
#define EP_KERNEL_SET "dsp"
extern int16_t ep_scratch[]; /* im2col column / offset input row, sized by the generated model (model.c) */
void ep_fc(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
           const int32_t *shift, int per_channel, int batches, int depth, int units, int32_t in_off, int32_t out_off,
           int32_t act_min, int32_t act_max);
void ep_conv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
             const int32_t *shift, const int32_t *geo, int32_t in_off, int32_t out_off, int32_t act_min,
             int32_t act_max);
void ep_dwconv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
               const int32_t *shift, const int32_t *geo, int depth_mult, int32_t in_off, int32_t out_off,
               int32_t act_min, int32_t act_max);
#else
#define EP_KERNEL_SET "reference"
#define ep_fc ep_fc_ref
#define ep_conv ep_conv_ref
#define ep_dwconv ep_dwconv_ref
#endif
void ep_avgpool(const int8_t *in, int8_t *out, const int32_t *geo, int32_t act_min, int32_t act_max);
void ep_add(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *bshape, const int32_t *p, int kind);
void ep_lut(const int8_t *in, int8_t *out, int n, const int8_t *table);
void ep_mul(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *bshape, const int32_t *p);
void ep_requantize(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift);
void ep_copy(const int8_t *in, int8_t *out, int n);
void ep_concat(int8_t *out, int n_in, const int8_t *const *ins, const int32_t *inner, int outer);
void ep_pad(const int8_t *in, int8_t *out, const int32_t *dims, const int32_t *before, const int32_t *after,
            int8_t value);
void ep_mean(const int8_t *in, int8_t *out, const int32_t *dims, const int32_t *reduce, int32_t in_zp,
             int32_t out_zp, int32_t mult, int32_t shift);
void ep_softmax(const int8_t *in, int8_t *out, int outer, int depth, int32_t mult, int32_t left_shift,
                int32_t diff_min);
void ep_tanh(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t radius, int32_t mult, int32_t shift);
void ep_logistic(const int8_t *in, int8_t *out, int n, int32_t in_zp, int32_t radius, int32_t mult, int32_t shift);

#endif
