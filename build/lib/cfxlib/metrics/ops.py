"""System performance and funnel metrics: uptime, latency, AI usage, lead conversion (SQL)."""

from __future__ import annotations

import pandas as pd

LEAD_MATURITY_DAYS = 90


def monthly_ops(con) -> pd.DataFrame:
    """Per month and service: ``uptime_pct`` (mean of daily uptime), ``p95_latency_ms`` (mean of
    daily p95), ``requests``, ``errors``, ``error_rate`` (errors / requests), ``ai_calls``."""
    return con.execute(
        """
        SELECT strftime(date_trunc('month', date), '%Y-%m') AS month, service,
               avg(uptime_pct) AS uptime_pct, avg(p95_latency_ms) AS p95_latency_ms,
               sum(requests) AS requests, sum(errors) AS errors,
               sum(errors) / nullif(sum(requests), 0) AS error_rate, sum(ai_calls) AS ai_calls
        FROM ops_daily GROUP BY ALL ORDER BY 1, 2
        """
    ).df()


def monthly_ops_total(con) -> pd.DataFrame:
    """Per month across services: ``uptime_pct`` = mean daily uptime over all services and days
    (the availability a customer sees on average), worst service's uptime, mean p95 latency,
    requests, error rate and AI calls."""
    return con.execute(
        """
        WITH by_service AS (
            SELECT date_trunc('month', date) AS month, service, avg(uptime_pct) AS uptime
            FROM ops_daily GROUP BY date_trunc('month', date), service
        ),
        worst AS (SELECT month, min(uptime) AS worst_service_uptime_pct FROM by_service GROUP BY month),
        totals AS (
            SELECT date_trunc('month', date) AS month, avg(uptime_pct) AS uptime_pct,
                   avg(p95_latency_ms) AS p95_latency_ms, sum(requests) AS requests,
                   sum(errors) / nullif(sum(requests), 0) AS error_rate, sum(ai_calls) AS ai_calls
            FROM ops_daily GROUP BY date_trunc('month', date)
        )
        SELECT strftime(t.month, '%Y-%m') AS month, t.uptime_pct, w.worst_service_uptime_pct,
               t.p95_latency_ms, t.requests, t.error_rate, t.ai_calls
        FROM totals t JOIN worst w ON w.month = t.month
        ORDER BY t.month
        """
    ).df()


def lead_conversion(con) -> pd.DataFrame:
    """Lead conversion by the month leads were created: ``leads``, ``converted_90d`` (converted
    within 90 days of creation) and ``conversion_90d`` = converted_90d / leads, for months whose
    leads are all at least 90 days old at the data's last day (``mature``)."""
    return con.execute(
        f"""
        WITH last AS (SELECT max(date) AS d FROM usage_daily)
        SELECT strftime(date_trunc('month', created_date), '%Y-%m') AS month,
               count(*) AS leads,
               count(*) FILTER (WHERE converted_date IS NOT NULL AND date_diff('day', created_date, converted_date) <= {LEAD_MATURITY_DAYS}) AS converted_90d,
               count(*) FILTER (WHERE converted_date IS NOT NULL AND date_diff('day', created_date, converted_date) <= {LEAD_MATURITY_DAYS})
                   / count(*) AS conversion_90d,
               last_day(max(created_date)) + INTERVAL {LEAD_MATURITY_DAYS} DAY <= (SELECT d FROM last) AS mature
        FROM leads GROUP BY 1 ORDER BY 1
        """
    ).df()
