"""Polygon.io: REST and WebSocket payload parsing (pure functions); the clients come next."""
