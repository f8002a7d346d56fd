"""Imported by every bench file (``imports: [../bench_drivers.py]``): puts hil/ on the module
path and registers the voltagehil drivers and strategy with labgrid."""

import os
import sys

_HIL = os.path.dirname(os.path.abspath(__file__))
if _HIL not in sys.path:
    sys.path.insert(0, _HIL)

import voltagehil  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
