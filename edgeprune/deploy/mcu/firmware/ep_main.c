/* EEMBC / MLPerf Tiny benchmark protocol over the UART (115200 8N1, '%'-terminated commands, m-... replies,
 * m-ready after each command) plus edgeprune extensions (ep-info, ep-layers, ep-mem, ep-raw, ep-db); see
 * docs/emulated-board.md. Every extension reply ends with m-ep-crc-[XXXXXXXX]: the CRC-32 of the reply's lines
 * (each as sent, '\r' left out), so the host rejects a reply the link corrupted. The model is the generated
 * model.c (ep_model.h).
 *
 * Build-time options (edgeprune.deploy.build):
 *   EP_MLPERF_MODEL "kws01"...   the m-model id the MLPerf Tiny runner picks its test script by
 *   EP_INPUT_UINT8_MINUS_128     ic01/vww01: each dataset byte minus 128 is the int8 input, as the reference
 *                                firmwares do
 *   EP_INPUT_FLOAT32_AD_SCORE    ad01: float32 input quantized with the input tensor's parameters, and one result,
 *                                the mean squared error of the dequantized output against the float input (the
 *                                reference anomaly-detection firmware); a buffer of exactly the int8 input size is
 *                                taken as raw int8 (edgeprune's bench)
 *   EP_LAP_US_NUM / _DEN         m-lap-us = ticks * NUM / DEN: on the emulated board an estimate in microseconds of
 *                                the real board (instructions x cycles per instruction / clock), described by
 *                                EP_LAP_US_NOTE; otherwise microseconds of the tick counter */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ep_board.h"
#include "ep_model.h"

#define CMD_SIZE 1024 /* EEMBC uses 80; longer db lines are accepted */
#define FW_VERSION "edgeprune-fw 0.2 (EEMBC ULPMark-ML protocol)"
#ifndef EP_DB_MAX
#define EP_DB_MAX 65536
#endif

static char cmd[CMD_SIZE + 1];
static uint8_t db_buf[EP_DB_MAX] __attribute__((aligned(4)));
static uint32_t db_size, db_pos;
static uint64_t layer_ticks[512];
static uint32_t timed_runs;
static uint64_t laps[2]; /* ticks at the start and end of the last timed inferences */
static uint32_t crc;     /* CRC-32 of the extension reply so far */
static int crc_on;
#ifndef EP_NO_MAIN
extern uint32_t _sstack, _estack;
#endif

static uint32_t crc_step(uint32_t c, uint8_t b) {
  c ^= b;
  for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  return c;
}

static void put(char c) {
  if (crc_on && c != '\r') crc = crc_step(crc, (uint8_t)c);
  ep_uart_putc(c);
}

static void out(const char *s) {
  while (*s) put(*s++);
}

static void out_u64(uint64_t v) {
  char b[21];
  int i = 20;
  b[i] = 0;
  do {
    b[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  out(b + i);
}

static void out_i32(int32_t v) {
  if (v < 0) {
    put('-');
    out_u64((uint64_t)(-(int64_t)v));
  } else {
    out_u64((uint64_t)v);
  }
}

static void out_hex8(uint8_t v) {
  static const char h[] = "0123456789abcdef";
  put(h[v >> 4]);
  put(h[v & 15]);
}

static void out_fixed3(float f) { /* %0.3f without printf */
  if (f < 0) {
    put('-');
    f = -f;
  }
  uint64_t milli = (uint64_t)(f * 1000.0f + 0.5f);
  out_u64(milli / 1000);
  put('.');
  put((char)('0' + milli / 100 % 10));
  put((char)('0' + milli / 10 % 10));
  put((char)('0' + milli % 10));
}

#ifdef EP_LAP_US_NUM
/* Read at run time (volatile), so the code, and with it the flash size, does not depend on the model's cycles per
 * instruction: a constant divisor would be compiled into a different instruction sequence for each ratio. */
static const volatile uint32_t lap_us_ratio[2] = {EP_LAP_US_NUM, EP_LAP_US_DEN};
#endif

static uint64_t timestamp(void) {
  const uint64_t t = ep_ticks();
  out("m-lap-us-");
#ifdef EP_LAP_US_NUM
  out_u64(t * lap_us_ratio[0] / lap_us_ratio[1]);
#else
  out_u64(t * 1000000u / ep_tick_hz());
#endif
  out("\r\n");
  return t;
}

#ifdef EP_INPUT_FLOAT32_AD_SCORE
/* The buffer holds float32 values (not raw int8) when it is four times the input size. */
static int float_input(void) { return db_pos == 4u * ep_inputs[0].size; }

static float input_float(uint32_t k) {
  if (!float_input()) return (float)((int8_t)db_buf[k] - ep_inputs[0].zero_point) * ep_inputs[0].scale;
  float v;
  memcpy(&v, db_buf + 4 * k, 4);
  return v;
}
#endif

static int8_t input_byte(uint32_t pos) { /* the int8 input value at flat position pos of all inputs */
#if defined(EP_INPUT_FLOAT32_AD_SCORE)
  if (float_input()) {
    const int32_t q = (int32_t)roundf(input_float(pos) / ep_inputs[0].scale) + ep_inputs[0].zero_point;
    return (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
  }
#endif
  if (pos >= db_pos) return 0;
#ifdef EP_INPUT_UINT8_MINUS_128
  return (int8_t)(db_buf[pos] - 128u);
#else
  return (int8_t)db_buf[pos];
#endif
}

static void load_tensor(void) {
  uint32_t pos = 0;
  for (int i = 0; i < ep_input_count; i++) {
    const uint32_t n = ep_inputs[i].size;
    for (uint32_t k = 0; k < n; k++, pos++) ep_arena[ep_inputs[i].offset + k] = input_byte(pos);
  }
}

static void infer_once(int timed) {
  for (int l = 0; l < ep_layer_count; l++) {
    const uint64_t t0 = ep_ticks();
    ep_run_layer(l);
    if (timed) layer_ticks[l] += ep_ticks() - t0;
  }
}

static void results(void) {
  out("m-results-[");
#ifdef EP_INPUT_FLOAT32_AD_SCORE
  float diffsum = 0;
  for (uint32_t k = 0; k < ep_outputs[0].size; k++) {
    const float y = (float)(ep_arena[ep_outputs[0].offset + k] - ep_outputs[0].zero_point) * ep_outputs[0].scale;
    const float diff = y - input_float(k);
    diffsum += diff * diff;
  }
  out_fixed3(diffsum / (float)ep_outputs[0].size);
  out("]\r\n");
  return;
#endif
  int first = 1;
  for (int o = 0; o < ep_output_count; o++)
    for (uint32_t k = 0; k < ep_outputs[o].size; k++) {
      if (!first) put(',');
      first = 0;
      const int8_t q = ep_arena[ep_outputs[o].offset + k];
      out_fixed3((float)(q - ep_outputs[o].zero_point) * ep_outputs[o].scale);
    }
  out("]\r\n");
}

static void infer(int n, int warmup) {
  load_tensor();
  out("m-warmup-start-");
  out_i32(warmup);
  out("\r\n");
  while (warmup-- > 0) infer_once(0);
  out("m-warmup-done\r\nm-infer-start-");
  out_i32(n);
  out("\r\n");
  for (int l = 0; l < ep_layer_count; l++) layer_ticks[l] = 0;
  timed_runs = (uint32_t)n;
  laps[0] = timestamp();
  while (n-- > 0) infer_once(1);
  laps[1] = timestamp();
  out("m-infer-done\r\n");
  results();
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int to_int(const char *s, int dflt) {
  if (!s || !*s) return dflt;
  int neg = *s == '-', v = 0;
  if (neg) s++;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  return neg ? -v : v;
}

static void db(char *arg, char *rest) {
  if (!arg) {
    out("e-[Command 'db' requires a subcommand]\r\n");
  } else if (!strcmp(arg, "load")) {
    const int n = to_int(rest, 0);
    if (n <= 0) {
      out("e-[Command 'db load' must be >0 bytes]\r\n");
    } else if ((uint32_t)n > EP_DB_MAX) {
      out("e-[db load exceeds the buffer]\r\n");
    } else {
      db_size = (uint32_t)n;
      db_pos = 0;
      out("m-[Expecting ");
      out_i32(n);
      out(" bytes]\r\n");
    }
  } else if (!strcmp(arg, "print")) {
    for (uint32_t i = 0; i < db_pos; i++) {
      if (i % 8 == 0) out("m-buffer-");
      out_hex8(db_buf[i]);
      out((i + 1) % 8 == 0 || i + 1 == db_pos ? "\r\n" : "-");
    }
  } else {
    const size_t len = strlen(arg);
    if (len & 1u) {
      out("e-[Insufficent number of hex digits]\r\n");
      return;
    }
    for (size_t i = 0; i < len; i += 2) {
      const int hi = hexval(arg[i]), lo = hexval(arg[i + 1]);
      if (hi < 0 || lo < 0) {
        out("e-[Invalid hex digit]\r\n");
        return;
      }
      if (db_pos < db_size) db_buf[db_pos++] = (uint8_t)(hi << 4 | lo);
      if (db_pos == db_size) {
        out("m-load-done\r\n");
        return;
      }
    }
  }
}

#ifndef EP_NO_MAIN /* our start-up paints the stack between _sstack and _estack */
static uint32_t stack_used(void) {
  const uint32_t *p = &_sstack;
  while (p < &_estack && *p == 0xDEADBEEFu) p++;
  return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}
#endif

/* The MLPerf Tiny runner picks its test script by the m-model id (kws01, ad01, ...: main.py run_test), so a
 * build for the runner sets EP_MLPERF_MODEL; otherwise the model's own name. */
static const char *mlperf_model(void) {
#ifdef EP_MLPERF_MODEL
  return EP_MLPERF_MODEL;
#else
  return ep_model_name;
#endif
}

static void ep_info(void) {
  out("m-ep-model-[");
  out(ep_model_name);
  out("]\r\nm-ep-sha256-[");
  out(ep_model_sha256);
  out("]\r\nm-ep-timer-[");
  out(ep_timer_name());
  put(',');
  out_u64(ep_tick_hz());
  out("]\r\nm-ep-board-[");
  out(ep_board_kind());
  out("]\r\nm-ep-kernels-[");
  out(ep_kernel_set);
  out("]\r\nm-ep-input-[");
#if defined(EP_INPUT_FLOAT32_AD_SCORE)
  out("float32");
#elif defined(EP_INPUT_UINT8_MINUS_128)
  out("uint8-128");
#else
  out("int8");
#endif
  out("]\r\nm-ep-layers-[");
  out_i32(ep_layer_count);
  out("]\r\nm-ep-io-[");
  uint32_t ins = 0, outs = 0;
  for (int i = 0; i < ep_input_count; i++) ins += ep_inputs[i].size;
  for (int i = 0; i < ep_output_count; i++) outs += ep_outputs[i].size;
  out_u64(ins);
  put(',');
  out_u64(outs);
  out("]\r\n");
}

static void ep_layers_cmd(void) {
  out("m-ep-runs-[");
  out_u64(timed_runs);
  out("]\r\nm-ep-laps-[");
  out_u64(laps[0]);
  put(',');
  out_u64(laps[1]);
  out("]\r\n");
  for (int l = 0; l < ep_layer_count; l++) {
    out("m-ep-layer-[");
    out_i32(l);
    put(',');
    out(ep_layers[l].op);
    put(',');
    out(ep_layers[l].component);
    put(',');
    out_u64(layer_ticks[l]);
    out("]\r\n");
  }
}

static void ep_mem(void) {
  out("m-ep-mem-[arena=");
  out_u64(ep_arena_bytes);
#ifndef EP_NO_MAIN
  out(",stack_used=");
  out_u64(stack_used());
  out(",stack_size=");
  out_u64((uint32_t)((uintptr_t)&_estack - (uintptr_t)&_sstack));
#endif
  out("]\r\n");
}

static void ep_raw(void) {
  out("m-ep-raw-[");
  for (int o = 0; o < ep_output_count; o++)
    for (uint32_t k = 0; k < ep_outputs[o].size; k++) out_hex8((uint8_t)ep_arena[ep_outputs[o].offset + k]);
  out("]\r\n");
}

static void out_hex32(uint32_t v) {
  for (int k = 24; k >= 0; k -= 8) out_hex8((uint8_t)(v >> k));
}

static void ep_db(void) { /* what the buffer holds: size, bytes loaded, their CRC-32 */
  uint32_t c = 0xFFFFFFFFu;
  for (uint32_t i = 0; i < db_pos; i++) c = crc_step(c, db_buf[i]);
  out("m-ep-db-[");
  out_u64(db_size);
  put(',');
  out_u64(db_pos);
  put(',');
  out_hex32(~c);
  out("]\r\n");
}

static void help(void) {
  out(FW_VERSION "\r\n\r\nhelp         : Print this information\r\nname         : Print the name of the device\r\n"
      "timestamp    : Generate a timestamp\r\ndb SUBCMD    : Manipulate a generic byte buffer\r\n"
      "  load N     : Allocate N bytes and set load counter\r\n  db HH[HH]* : Load 8-bit hex byte(s) until N bytes\r\n"
      "  print      : Print the buffer as hex\r\ninfer N [W=0]: Load input, execute N inferences after W warmup loops\r\n"
      "results      : Return the result fp32 vector\r\nep-info      : model, sha256, timer, layers, io bytes\r\n"
      "ep-layers    : per-layer ticks summed over the last timed inferences\r\n"
      "ep-mem       : arena bytes, stack high-water mark\r\nep-raw       : raw int8 outputs as hex\r\n"
      "ep-db        : input buffer size, bytes loaded, their CRC-32\r\n");
}

/* An extension command's reply, then its m-ep-crc- line; 0 for an unknown one. */
static int extension(const char *tok) {
  void (*run)(void) = !strcmp(tok, "ep-info")     ? ep_info
                      : !strcmp(tok, "ep-layers") ? ep_layers_cmd
                      : !strcmp(tok, "ep-mem")    ? ep_mem
                      : !strcmp(tok, "ep-raw")    ? ep_raw
                      : !strcmp(tok, "ep-db")     ? ep_db
                                                  : 0;
  if (!run) return 0;
  crc = 0xFFFFFFFFu;
  crc_on = 1;
  run();
  crc_on = 0;
  out("m-ep-crc-[");
  out_hex32(~crc);
  out("]\r\n");
  return 1;
}

static void dispatch(char *line) {
  char *save = 0, *tok = strtok_r(line, " ", &save);
  if (!tok) {
    out("e-[Empty command]\r\n");
  } else if (!strcmp(tok, "name")) {
    out("m-name-dut-[edgeprune-");
    out(ep_model_name);
    out("]\r\n");
  } else if (!strcmp(tok, "timestamp")) {
    timestamp();
  } else if (!strcmp(tok, "profile")) {
#ifdef EP_LAP_US_NOTE
    out("m-profile-[" FW_VERSION "; m-lap-us: " EP_LAP_US_NOTE "]\r\nm-model-[");
#else
    out("m-profile-[" FW_VERSION "]\r\nm-model-[");
#endif
    out(mlperf_model());
    out("]\r\n");
  } else if (!strcmp(tok, "help")) {
    help();
  } else if (!strcmp(tok, "db")) {
    char *arg = strtok_r(0, " ", &save);
    db(arg, strtok_r(0, " ", &save));
  } else if (!strcmp(tok, "infer")) {
    const int n = to_int(strtok_r(0, " ", &save), 1), w = to_int(strtok_r(0, " ", &save), 10);
    if (n <= 0) {
      out("e-[Inference iterations must be >0]\r\n");
    } else if (w < 0) {
      out("e-[Inference warmup must be >=0]\r\n");
    } else {
      infer(n, w);
    }
  } else if (!strcmp(tok, "results")) {
    results();
  } else if (!extension(tok)) {
    out("e-[Unknown command: ");
    out(tok);
    out("]\r\n");
  }
  out("m-ready\r\n");
}

static uint32_t cmd_pos;

void ep_protocol_start(void) {
  ep_board_init();
  out("m-init-done\r\nm-ready\r\n");
}

void ep_protocol_feed(int c) {
  if (c == '%') {
    cmd[cmd_pos] = 0;
    dispatch(cmd);
    cmd_pos = 0;
  } else if (c != '\r' && c != '\n' && cmd_pos < CMD_SIZE) {
    cmd[cmd_pos++] = (char)c;
  }
}

#ifndef EP_NO_MAIN /* bare metal; Arduino/PlatformIO builds call these from setup() and loop() */
int main(void) {
  ep_protocol_start();
  for (;;) {
    const int c = ep_uart_getc();
    if (c >= 0) {
      ep_protocol_feed(c);
    } else {
      ep_wait_for_input();
    }
  }
}
#endif
