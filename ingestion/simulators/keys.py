"""Keys the simulators accept by default. They are not secrets: only the loopback simulators know them."""

POLYGON_SIM_KEY = "sim-polygon-key"
UW_SIM_TOKEN = "sim-uw-token"  # noqa: S105 (a loopback simulator key, not a secret)
