"""Polygon.io (Massive): the REST client (``rest``), the WebSocket client (``websocket``) and the seed's facade over
both (``client``); pure parsers from page bytes to frames (``envelope``, ``rows``, ``parse``, ``reference``,
``ticks``, ``ws_events``) and when a bar becomes knowable (``bar_time``).
"""
