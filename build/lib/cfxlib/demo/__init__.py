"""The demo company: a realistic CMMS vendor's data directory with known churn truth."""

from cfxlib.demo.generate import DemoOptions, DemoOptionsError, generate

__all__ = ["DemoOptions", "DemoOptionsError", "generate"]
