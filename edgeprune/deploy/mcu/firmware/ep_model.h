/* Interface of the generated model.c (edgeprune.deploy.aot.codegen). */
#ifndef EP_MODEL_H
#define EP_MODEL_H
#include <stdint.h>

typedef struct { const char *op; const char *component; } ep_layer_info;
typedef struct { uint32_t offset, size; float scale; int32_t zero_point; } ep_tensor_io;

extern int8_t ep_arena[];
extern const unsigned ep_arena_bytes;
extern const char ep_model_name[];
extern const char ep_model_sha256[];
extern const char ep_kernel_set[]; /* "reference" or "dsp" (ep_kernels.h), "tflm" (ep_model_tflm.cpp) */
extern const int ep_layer_count;
extern const ep_layer_info ep_layers[];
extern const ep_tensor_io ep_inputs[], ep_outputs[];
extern const int ep_input_count, ep_output_count;

void ep_run_layer(int i);

#endif
