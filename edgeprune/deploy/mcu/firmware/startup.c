/* Cortex-M start-up for the MPS2 boards (QEMU) and a vector table (SysTick, UART0 RX): .data copy, .bss clear,
 * stack paint (for the high-water mark), FPU enable, then main(). */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
extern int main(void);
void ep_systick_handler(void);
void ep_uart_rx_handler(void);

void Reset_Handler(void) {
  uint32_t *s = &_sidata, *d = &_sdata;
  while (d < &_edata) *d++ = *s++;
  for (d = &_sbss; d < &_ebss; d++) *d = 0;
  uint32_t sp;
  __asm volatile("mov %0, sp" : "=r"(sp));
  for (d = &_sstack; d < (uint32_t *)(sp - 64); d++) *d = 0xDEADBEEFu;
#if defined(__ARM_FP)
  *(volatile uint32_t *)0xE000ED88 |= (0xFu << 20); /* CP10/CP11 full access */
  __asm volatile("dsb; isb");
#endif
  main();
  for (;;) {
  }
}

void Default_Handler(void) {
  for (;;) {
  }
}

__attribute__((section(".isr_vector"), used)) const void *const ep_vectors[17] = {
    &_estack, Reset_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    0,        0,             0,               0,               Default_Handler, Default_Handler, 0,
    Default_Handler, ep_systick_handler, ep_uart_rx_handler /* IRQ 0: UART0 RX */};
