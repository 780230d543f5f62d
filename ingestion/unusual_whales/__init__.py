"""Unusual Whales: the REST client (``client``), its continuous flow-alert collector (``collector``) and request
budgets (``quota``); pure parsers (``parse``), timestamp forms (``timestamps``) and daily feature aggregates
(``aggregates``), which touch no network and no store.
"""
