"""On-device deployment: serial protocol, emulated board, SSH targets (issue: devices)."""
