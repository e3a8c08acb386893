"""DFE's input modes by name (kept free of torch, like variants.py, so plans load fast); see networks/dfe.py."""

DFE_INPUTS = ("strong_pair", "weak_strong")
