"""The cfx HTTP and WebSocket service (FastAPI). Start it with ``cfx serve``."""
