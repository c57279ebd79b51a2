"""Fuzzing harnesses for the compiled core (atheris); see docs/core_ext.md."""
