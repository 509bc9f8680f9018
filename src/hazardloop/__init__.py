"""HazardLoop: AI-assisted industrial production safety."""

__version__ = "0.1.0"
