"""Load benchmarks of the device gateway (issue 4): generator, baselines, scenarios.

See ``bench/load/README.md`` for the commands and what each figure means.
"""
