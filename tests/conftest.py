"""Tests import the project's modules from the repository root; shared helpers live in tiny.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
