"""EMS: a distributed KV-cache pool for LLM inference — Python client.

    import ems
    client = ems.Client("127.0.0.1:50051")
    keys = ems.PrefixHasher(block_tokens=16).keys("llama3-8b/bf16/tp1", prompt_tokens)
    client.put(keys[0], kv_block)              # any C-contiguous buffer, not copied
    n = client.get(keys[0], out)               # writes into `out` (bytearray, numpy, ...)

Values move between EMS and the caller's own memory through the buffer protocol; every call
releases the GIL while it waits. Errors are ``ems.EmsError`` subclasses named after the
status codes (``NotFoundError`` is also a ``LookupError``, ``InvalidArgumentError`` a
``ValueError``, ``UnavailableError`` a ``ConnectionError``...).
"""

from ems._ems import (  # noqa: F401  (re-exported API)
    ROOT_DIGEST,
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    Client,
    DataLossError,
    DeadlineExceededError,
    EmsError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    Key,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    PrefixHasher,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
    chain_digest,
    checksum,
)

__all__ = [
    "ROOT_DIGEST",
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "Client",
    "DataLossError",
    "DeadlineExceededError",
    "EmsError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "Key",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "PrefixHasher",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "chain_digest",
    "checksum",
]
