"""Prompts for SAM-2 without a human: PCSW on whole volumes, and boxes/points from masks."""
