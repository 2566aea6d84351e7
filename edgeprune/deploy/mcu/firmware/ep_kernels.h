/* int8 kernels reproducing TFLite Micro's reference kernels bit for bit (edgeprune AOT). */
#ifndef EP_KERNELS_H
#define EP_KERNELS_H
#include <stdint.h>

typedef struct { int32_t n, h, w, c; } ep_shape4;

void ep_fc(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
           const int32_t *shift, int per_channel, int batches, int depth, int units, int32_t in_off, int32_t out_off,
           int32_t act_min, int32_t act_max);
void ep_conv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
             const int32_t *shift, const int32_t *geo, int32_t in_off, int32_t out_off, int32_t act_min,
             int32_t act_max);
void ep_dwconv(const int8_t *in, int8_t *out, const int8_t *w, const int32_t *bias, const int32_t *mult,
               const int32_t *shift, const int32_t *geo, int depth_mult, int32_t in_off, int32_t out_off,
               int32_t act_min, int32_t act_max);
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
