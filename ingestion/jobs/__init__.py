"""Jobs that move vendor data into Feast: the unit-of-work engine and its sources, landing, coverage, derived
features, data-quality checks, and the commands that run them."""
