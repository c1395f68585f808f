"""Scheduled jobs: ``scheduler/jobs.yml`` (each job a command, a cron expression and a time zone),
run by ``cfx schedule daemon`` (APScheduler 3 with a SQLite job store) or one at a time by
``cfx schedule run JOB``."""
