"""Exceptions for user-facing failures; internal bugs keep ordinary exceptions and tracebacks."""


class SSSError(Exception):
    """Base class of every error caused by the user's input, files or environment."""


class DatasetError(SSSError):
    """A raw dataset (folder, dataset.json, image or label file) is missing or invalid."""


class PlansError(SSSError):
    """A fingerprint or plans file is missing, malformed or inconsistent."""


class CacheError(SSSError):
    """A preprocessed cache file is missing, truncated or does not match its recorded checksum."""


class CheckpointError(SSSError):
    """A SAM-2 or training checkpoint is missing, corrupt, or does not match the model."""
