"""One Python wrapper and Protocol per module kind.

Nothing in this package imports cffi: native calls go through
:mod:`pymesos_modules.abi`.
"""
