"""File input and output: atomic JSON/array writes and NIfTI reading/writing with geometry."""
