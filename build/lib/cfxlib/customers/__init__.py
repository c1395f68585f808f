"""Customer intelligence: health scores, churn model and its scores, playbooks, KPIs, survival."""
