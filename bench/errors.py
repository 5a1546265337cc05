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


class GPURequired(BackendError):
    """A workload that must run on the GPU (require_gpu) would run on the CPU here."""


class OutOfMemory(BackendError):
    """The device ran out of memory: the message says so in words, not in a vendor's stack trace."""

    def __init__(self, what: str, e: BaseException):
        super().__init__(f"{what} needs more GPU memory than is free ({type(e).__name__}: {str(e).splitlines()[0]})")


def is_out_of_memory(e: BaseException) -> bool:
    """torch's OutOfMemoryError, or a CUDA/CTranslate2 RuntimeError that says it ran out of memory."""
    return type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower())
