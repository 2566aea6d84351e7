"""Putting a model on a board, split by what it talks to: ``mcu`` (benchmark firmware, the emulated board, serial
protocol, flashing, PlatformIO) and ``ssh`` (Linux boards over SSH: transport, sync, the board-side runner)."""
