"""pymesos-modules: a Mesos-style master runtime extended by native C/C++ modules."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pymesos-modules")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
