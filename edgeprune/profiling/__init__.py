"""Profilers per runtime and the Measurement record (issue: profiling)."""
