"""cfx: ChatterFix customer, revenue and investor intelligence.

The library behind the ``cfx`` command line, the notebooks, the reports and the service.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cfx")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
