"""One small error hierarchy. Vendor errors are mapped at the adapter with ``raise ... from e``."""


class ShadowbenchError(Exception):
    """Base class. ``exit_status`` is what the CLI exits with."""

    exit_status = 1


class ConfigError(ShadowbenchError):
    """A suite file, catalog or results file is not what it should be. Message names file, key and expectation."""

    exit_status = 2

    def __init__(self, file, key: str, expected: str, got=None):
        self.file, self.key, self.expected, self.got = str(file), key, expected, got
        text = f"{self.file}: {key}: expected {expected}"
        if got is not None:
            text += f", got {got!r}" if not isinstance(got, str) or not got.startswith("<") else f", got {got}"
        super().__init__(text)


class ModelNotFound(ShadowbenchError):
    exit_status = 2


class DeviceUnavailable(ShadowbenchError):
    exit_status = 2


class BackendError(ShadowbenchError):
    """A backend failed while loading or running a workload."""
