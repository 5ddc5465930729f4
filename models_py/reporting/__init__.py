"""Reporting: the HTML report of the champions and the real-data results page."""
