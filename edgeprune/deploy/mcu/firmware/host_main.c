/* Host harness for the generated model: reads input sets (all inputs concatenated) from stdin until EOF and
 * writes the outputs (concatenated) of each to stdout. Used to check the kernels against TFLM on the host. */
#include <stdio.h>

#include "ep_model.h"

int main(void) {
  for (;;) {
    for (int i = 0; i < ep_input_count; i++)
      if (fread(ep_arena + ep_inputs[i].offset, 1, ep_inputs[i].size, stdin) != ep_inputs[i].size) return 0;
    for (int l = 0; l < ep_layer_count; l++) ep_run_layer(l);
    for (int o = 0; o < ep_output_count; o++) fwrite(ep_arena + ep_outputs[o].offset, 1, ep_outputs[o].size, stdout);
    fflush(stdout);
  }
}
