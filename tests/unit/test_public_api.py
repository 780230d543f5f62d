"""The package's public face: exactly the seed's names and the error tree, sorted, each importable."""

import inspect

import ingestion


def test_all_is_the_public_surface_and_sorted() -> None:
    assert ingestion.__all__ == sorted(ingestion.__all__)
    for name in ingestion.__all__:
        assert getattr(ingestion, name) is not None
    for seed_name in ("PolygonClient", "PolygonRESTClient", "PolygonWebSocketClient", "CircuitBreaker",
                      "EnhancedUnusualWhalesClient"):  # fmt: skip
        assert inspect.isclass(getattr(ingestion, seed_name))
    assert ingestion.UnusualWhalesClient is ingestion.EnhancedUnusualWhalesClient


def test_seed_signatures() -> None:
    params = list(inspect.signature(ingestion.PolygonRESTClient.get_aggregates).parameters)
    assert params == ["self", "symbol", "multiplier", "timespan", "from_date", "to_date", "adjusted", "sort", "limit"]
    client = list(inspect.signature(ingestion.PolygonClient).parameters)
    assert client[:4] == ["api_key", "db_manager", "feature_store", "use_cache"]
    breaker = inspect.signature(ingestion.CircuitBreaker).parameters
    assert {"failure_threshold", "recovery_timeout", "name"} <= set(breaker)
    for method in ("allow_request", "on_success", "on_failure", "reset"):
        assert callable(getattr(ingestion.CircuitBreaker, method))
    for method in ("connect", "disconnect", "subscribe", "unsubscribe", "register_callback", "run"):
        assert callable(getattr(ingestion.PolygonWebSocketClient, method))
    for method in ("get_unusual_options", "get_flow_data", "get_dark_pool_data", "get_insider_trading",
                   "get_etf_flow", "get_options_alerts", "get_all_unusual_activity",
                   "start_options_flow_collection", "stop_options_flow_collection"):  # fmt: skip
        assert callable(getattr(ingestion.EnhancedUnusualWhalesClient, method))
