// Arduino board support for the benchmark firmware (PlatformIO projects from edgeprune.deploy.platformio):
// Serial at 115200 8N1, DWT cycle counter on ARMv7-M cores (cycles at SystemCoreClock), micros() elsewhere.
#include <Arduino.h>

extern "C" {
#include "ep_board.h"
}

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
#define EP_DWT 1
static volatile uint32_t *const kDwtCtrl = (uint32_t *)0xE0001000u;
static volatile uint32_t *const kDwtCyccnt = (uint32_t *)0xE0001004u;
static volatile uint32_t *const kDemcr = (uint32_t *)0xE000EDFCu;
extern "C" uint32_t SystemCoreClock;
#endif

static uint32_t hi, last;

extern "C" void ep_board_init(void) {
  Serial.begin(115200);
  while (!Serial) {
  }
#ifdef EP_DWT
  *kDemcr |= 1u << 24;
  *kDwtCyccnt = 0;
  *kDwtCtrl |= 1u;
#endif
}

extern "C" int ep_uart_getc(void) { return Serial.available() > 0 ? Serial.read() : -1; }

extern "C" void ep_uart_putc(char c) { Serial.write(c); }

extern "C" uint64_t ep_ticks(void) {
#ifdef EP_DWT
  const uint32_t now = *kDwtCyccnt;
#else
  const uint32_t now = micros();
#endif
  if (now < last) hi++;
  last = now;
  return ((uint64_t)hi << 32) | now;
}

extern "C" uint32_t ep_tick_hz(void) {
#ifdef EP_DWT
  return SystemCoreClock;
#else
  return 1000000u;
#endif
}

extern "C" const char *ep_board_kind(void) { return "arduino"; }

extern "C" const char *ep_timer_name(void) {
#ifdef EP_DWT
  return "dwt";
#else
  return "micros";
#endif
}

void setup() { ep_protocol_start(); }

void loop() {
  const int c = ep_uart_getc();
  if (c >= 0) ep_protocol_feed(c);
}
