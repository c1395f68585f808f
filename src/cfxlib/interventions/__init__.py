"""Calls to action (CTAs): rules that turn risk into owned work, tracked to their outcome.

- :mod:`~cfxlib.interventions.rules`: the validated rule file (``config/interventions.yaml``,
  changed per home by ``$CFX_HOME/interventions.yaml``).
- :mod:`~cfxlib.interventions.store`: the durable CTA store (SQLite under ``$CFX_HOME``).
- :mod:`~cfxlib.interventions.engine`: evaluation of the rules against account signals (live in
  the service, in batch at every ``cfx run``), the lifecycle, owners, holdout and notifications.
"""
