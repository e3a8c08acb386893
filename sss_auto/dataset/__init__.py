"""Raw datasets: locating them, listing their cases, checking their integrity, making demo data."""
