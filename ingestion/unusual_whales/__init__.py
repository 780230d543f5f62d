"""Unusual Whales: pure parsers (``parse``), timestamp forms (``timestamps``) and daily feature aggregates
(``aggregates``). The HTTP client and the flow collector build on these; nothing here touches the network or a store.
"""
