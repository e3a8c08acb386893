"""Converters from public dataset releases to the raw dataset format."""
