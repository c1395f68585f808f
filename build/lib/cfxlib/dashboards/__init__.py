"""Live, interactive dashboards served by Voilà: the widgets, their data and the server.

The notebooks in ``dashboards/`` only compose what is here. Every number comes from the service
(``cfx serve``) with the viewer's own token, so roles hold end to end; :mod:`.server` runs Voilà
behind cfx tokens, and the feed client keeps the page live from ``/ws/customer-health``.
"""
