"""Content-addressed, immutable storage of every byte received or sent."""

from gateway.archive.blob_store import (
    ArchiveError,
    BlobBatch,
    BlobNotFound,
    BlobProblem,
    BlobRef,
    BlobStore,
    BlobTooLarge,
    BlobWriter,
    InvalidBlobHash,
)

__all__ = [
    "ArchiveError",
    "BlobBatch",
    "BlobNotFound",
    "BlobProblem",
    "BlobRef",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "InvalidBlobHash",
]
