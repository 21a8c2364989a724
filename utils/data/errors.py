"""Exceptions and warnings of the data layer.

Every data error derives from :class:`DataError`, so a caller can catch the whole family at once;
the subclasses say which kind of failure happened. Messages are one sentence: what is wrong, and
what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence


class DataError(Exception):
    """Base class of every error raised by ``utils.data``."""


class ChecksumError(DataError):
    """A file's bytes do not match any checksum published for it (a wrong, truncated or altered file)."""


class CorruptFileError(DataError):
    """A file is not in the format it claims (a broken gzip stream, a bad IDX header, a malformed text grid)."""


class DownloadError(DataError):
    """One download from one mirror failed (HTTP error, refused connection, truncated body)."""


class DatasetNotFoundError(DataError):
    """No verified copy of a dataset could be found or fetched from any place tried.

    ``attempts`` lists every place that was tried, each with the reason it did not work.
    """

    def __init__(self, message: str, attempts: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


class SubsetWarning(UserWarning):
    """The full dataset was not found, so a small subset shipped with a package is used instead."""


class CacheWarning(UserWarning):
    """The cache folder could not be written, so a download went to a temporary folder instead."""
