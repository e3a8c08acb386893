"""Pictures a person would rather look at than read: overlay PNGs and an HTML report."""
