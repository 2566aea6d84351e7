/* MPS2 (QEMU mps2-an385/an386/an500): CMSDK APB UART0 at 0x40004000 with its receive interrupt (IRQ 0), so the
 * idle firmware sleeps in WFI instead of polling; SysTick on the CPU clock with a software extension to 64 bits;
 * DWT CYCCNT used instead when it is present and counting (real cores). */
#include "ep_board.h"

#ifndef EP_CPU_HZ
#define EP_CPU_HZ 25000000u /* MPS2 SYSCLK as QEMU models it */
#endif
#define UART0 ((volatile uint32_t *)0x40004000u)
#define SYST ((volatile uint32_t *)0xE000E010u)
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define UART_RX_IRQ 0 /* CMSDK UART0 RX on the MPS2 FPGA images */
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)

static volatile uint32_t wraps;
static int use_dwt;

void ep_systick_handler(void) { wraps++; }

/* Only wakes the core: the byte stays in the data register until ep_uart_getc() reads it. */
void ep_uart_rx_handler(void) { UART0[3] = 0x2u; /* INTCLEAR: RX */ }

void ep_board_init(void) {
  UART0[4] = 16;    /* BAUDDIV (ignored by QEMU) */
  UART0[2] = 0xBu;  /* TX and RX enable, RX interrupt enable */
  NVIC_ISER0 = 1u << UART_RX_IRQ;
  SYST[1] = 0xFFFFFFu;
  SYST[2] = 0;
  SYST[0] = 0x7u; /* CPU clock, interrupt on wrap, enable */
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
  DEMCR |= 1u << 24; /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u;
  for (volatile int i = 0; i < 100; i++) {
  }
  use_dwt = DWT_CYCCNT != 0;
#endif
}

int ep_uart_getc(void) { return (UART0[1] & 0x2u) ? (int)(UART0[0] & 0xFFu) : -1; }

/* Interrupts masked around the check, so a byte arriving between the check and WFI still wakes it (a pending
 * interrupt ends WFI even while PRIMASK is set); the handler runs once they are unmasked. */
void ep_wait_for_input(void) {
  __asm volatile("cpsid i" ::: "memory");
  if (!(UART0[1] & 0x2u)) __asm volatile("dsb; wfi" ::: "memory");
  __asm volatile("cpsie i" ::: "memory");
}

void ep_uart_putc(char c) {
  while (UART0[1] & 0x1u) {
  }
  UART0[0] = (uint8_t)c;
}

static uint32_t dwt_hi, dwt_last;

uint64_t ep_ticks(void) {
  if (use_dwt) {
    const uint32_t now = DWT_CYCCNT;
    if (now < dwt_last) dwt_hi++;
    dwt_last = now;
    return ((uint64_t)dwt_hi << 32) | now;
  }
  uint32_t w, v;
  do {
    w = wraps;
    v = SYST[2];
  } while (w != wraps);
  return (uint64_t)w * 0x1000000u + (0xFFFFFFu - v);
}

uint32_t ep_tick_hz(void) { return EP_CPU_HZ; }

const char *ep_board_kind(void) { return "mps2-qemu"; }

const char *ep_timer_name(void) { return use_dwt ? "dwt" : "systick"; }
