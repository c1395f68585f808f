"""Revenue intelligence: MRR and its movements, retention, unit economics, forecasts, operations."""
