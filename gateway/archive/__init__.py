"""Content-addressed, immutable storage of every byte received or sent."""

from gateway.archive.blob_store import (
    ArchiveError,
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
    "BlobNotFound",
    "BlobProblem",
    "BlobRef",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "InvalidBlobHash",
]
