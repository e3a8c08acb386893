"""The clip memory bank's policies by name (kept free of torch, like dfe_modes.py, so plans load fast); see networks/memory.py."""

POLICIES = ("fifo", "self_sorting")
