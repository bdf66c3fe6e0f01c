"""Connector tests: each joins the shared contract kit (connectors/testing.py) against a real or imitation server."""
