"""Every way loading or using a module can fail, one class per stage.

The loader checks a library in a fixed order before any module code runs
(see docs/modules.md, "Checks, in order"): file -> dlopen -> entry point ->
magic -> ABI major -> struct size -> ABI minor -> required fields -> valid
name -> known kind -> wanted kind -> compatible() -> create().  Each stage
raises its own subclass of
:class:`ModuleError`, so callers and tests can tell them apart, and every
message names the file and module, what was expected and found, and a fix.
"""

from __future__ import annotations


class ModuleError(Exception):
    """Base class of every module loading, configuration and call error."""


# --- configuration (--modules / --modules_dir) -------------------------------


class ConfigError(ModuleError):
    """A --modules / --modules_dir configuration is malformed."""


class ConfigSyntaxError(ConfigError):
    """The configuration is not valid JSON (message gives line and column)."""


class ConfigSchemaError(ConfigError):
    """A configuration field is missing or has the wrong type."""


# --- finding and opening the file --------------------------------------------


class LibraryNotFoundError(ModuleError):
    """The library file does not exist or cannot be read."""


class InsecureLibraryError(ModuleError):
    """The file or a folder above it is writable by others (like sshd's StrictModes)."""


class LibraryOpenError(ModuleError):
    """dlopen() failed: not a shared object, wrong architecture, undefined symbol..."""


class EntryPointError(ModuleError):
    """The library has no pmm_module_entry(): not a pymesos-modules library."""


# --- descriptor checks, in check order ----------------------------------------


class DescriptorError(ModuleError):
    """Base class of the checks on one module descriptor."""


class BadMagicError(DescriptorError):
    """The descriptor does not start with PMM_MAGIC."""


class AbiMajorMismatchError(DescriptorError):
    """The module was built for another ABI major version."""


class StructSizeError(DescriptorError):
    """The descriptor or a function table is smaller than this ABI requires."""


class AbiMinorTooNewError(DescriptorError):
    """The module needs a newer ABI minor version than this host speaks."""


class MissingFieldError(DescriptorError):
    """A required descriptor field (name, kind, create, ...) is empty."""


class InvalidNameError(DescriptorError):
    """The descriptor's name is too long or holds characters a name may not (newline, ESC, /)."""


class UnknownKindError(DescriptorError):
    """The descriptor's kind is not one this host knows."""


class WrongKindError(DescriptorError):
    """The module is of another kind than the caller asked for."""


class IncompatibleModuleError(DescriptorError):
    """The module's compatible() check said it cannot run on this host."""


class ModuleCreateError(ModuleError):
    """The module's create() failed (message carries the module's own text)."""


# --- registry -------------------------------------------------------------------


class DuplicateModuleError(ModuleError):
    """Two libraries, or two descriptors of one library, provide a module with the same name."""


class UnknownModuleError(ModuleError):
    """A configuration or flag names a module no loaded library provides."""


class ModuleInUseError(ModuleError):
    """A library cannot be unloaded while instances of its modules are alive."""


class ConfigLoadError(ModuleError):
    """Loading a configuration failed; ``errors`` holds every failure found.

    Nothing from the configuration stays loaded when this is raised.
    """

    def __init__(self, errors: list[ModuleError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {error}" for error in errors)
        super().__init__(f"module configuration failed with {len(errors)} error(s):\n{lines}")
