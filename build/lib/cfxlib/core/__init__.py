"""Foundations every layer may use: errors, the state folder, settings, safe file output."""
