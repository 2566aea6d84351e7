// The model behind ep_model.h run by TensorFlow Lite Micro instead of the generated model.c (PlatformIO projects
// and Arduino sketches with runtime "tflm", edgeprune.deploy.platformio). The protocol (ep_main.c) is unchanged:
// it writes inputs into ep_arena at ep_inputs[i].offset, calls ep_run_layer() for each of ep_layer_count layers
// and reads outputs at ep_outputs[o].offset. Here ep_arena is [int8 I/O staging | TFLM tensor arena]; the single
// "layer" copies the inputs into the interpreter, runs Invoke() and copies the outputs back, so per-layer ticks
// cover the whole inference (TFLM runs every op inside Invoke()). Generated next to this file: ep_tflm_lib.h (the
// board's TFLM library), ep_model_info.h/.cpp (name, hash, I/O table), and the TFLM bundle's model_data.h/.cpp
// (model array, kTensorArenaSize) and op_resolver.h (exactly the model's ops).
#include "ep_tflm_lib.h"
#include <string.h>

#include "ep_model_info.h"
#include "model_data.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" {
#include "ep_board.h"
#include "ep_model.h"
}

static constexpr unsigned kStaging = (EP_IO_BYTES + 15u) & ~15u;  // keeps the tensor arena 16-byte aligned

alignas(16) int8_t ep_arena[kStaging + kTensorArenaSize];
const unsigned ep_arena_bytes = kTensorArenaSize;
const int ep_layer_count = 1;
const char ep_kernel_set[] = "tflm";
const ep_layer_info ep_layers[] = {{"TFLM_INVOKE", "model"}};

static tflite::MicroInterpreter *interpreter;
static bool failed;

static void report(const char *what) {  // once, in the protocol's error style; outputs then stay zero
  for (const char *s = "e-[TFLM "; *s; s++) ep_uart_putc(*s);
  for (; *what; what++) ep_uart_putc(*what);
  ep_uart_putc(']');
  ep_uart_putc('\r');
  ep_uart_putc('\n');
  failed = true;
}

// Created on the first inference (the EEMBC warm-up, or edgeprune's output check before any timed run).
static bool ready() {
  if (interpreter || failed) return interpreter != nullptr;
  const tflite::Model *model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    report("model schema version differs from the library's");
    return false;
  }
  static edgeprune::OpResolver resolver;
  if (edgeprune::RegisterOps(resolver) != kTfLiteOk) {
    report("op registration failed");
    return false;
  }
  static tflite::MicroInterpreter instance(model, resolver, reinterpret_cast<uint8_t *>(ep_arena + kStaging),
                                           kTensorArenaSize);
  if (instance.AllocateTensors() != kTfLiteOk) {
    report("AllocateTensors failed: tensor arena too small for this library build");
    return false;
  }
  for (int i = 0; i < ep_input_count; i++)
    if (instance.input(i)->bytes != ep_inputs[i].size) {
      report("input size differs from the bundle's");
      return false;
    }
  for (int o = 0; o < ep_output_count; o++)
    if (instance.output(o)->bytes != ep_outputs[o].size) {
      report("output size differs from the bundle's");
      return false;
    }
  interpreter = &instance;
  return true;
}

extern "C" void ep_run_layer(int) {
  if (!ready()) return;
  for (int i = 0; i < ep_input_count; i++)
    memcpy(interpreter->input(i)->data.int8, ep_arena + ep_inputs[i].offset, ep_inputs[i].size);
  if (interpreter->Invoke() != kTfLiteOk) {
    report("Invoke failed");
    interpreter = nullptr;
    return;
  }
  for (int o = 0; o < ep_output_count; o++)
    memcpy(ep_arena + ep_outputs[o].offset, interpreter->output(o)->data.int8, ep_outputs[o].size);
}
