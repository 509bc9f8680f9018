"""Alarms: one alarm per (sensor, condition) while the condition lasts, a person's verdict on it, and the
bridge from an alarm to a hazard DRAFT. ``live.py`` runs the streaming detectors and feeds this domain."""
