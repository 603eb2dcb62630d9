"""Hypothesis profiles for tests/test_properties.py.

"ci" (the default, used by `make test`): 200 examples per property, derandomized so that
every run tries the same inputs, no per-example deadline (timings vary on shared
machines). Set HYPOTHESIS_PROFILE=dev for a quick local run with 30 examples, or
HYPOTHESIS_PROFILE=thorough for 2000 random ones.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=30)
settings.register_profile(
    "thorough", parent=settings.get_profile("ci"), max_examples=2000, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
