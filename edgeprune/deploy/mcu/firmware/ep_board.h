/* Board support: UART byte I/O and a cycle/tick counter (SysTick everywhere, DWT CYCCNT where it counts). */
#ifndef EP_BOARD_H
#define EP_BOARD_H
#include <stdint.h>

void ep_board_init(void);
int ep_uart_getc(void); /* -1 when no byte is waiting */
void ep_wait_for_input(void); /* bare-metal main loop: sleep until a byte may have arrived (WFI) */
void ep_uart_putc(char c);
uint64_t ep_ticks(void);   /* monotonic */
uint32_t ep_tick_hz(void); /* ticks per second */
const char *ep_timer_name(void);
const char *ep_board_kind(void); /* "mps2-qemu" for the emulated board, "arduino", ... */

/* The protocol (ep_main.c): start once, then feed every received byte. */
void ep_protocol_start(void);
void ep_protocol_feed(int c);

#endif
