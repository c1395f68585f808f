"""Where data lives: the DuckDB warehouse and its ingest, the SQL engine, the live-event log."""
