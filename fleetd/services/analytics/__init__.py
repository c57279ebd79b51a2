"""The analytics background roles (docs/analytics.md 2.5) and export jobs.

Servers use :mod:`fleetd.services.analytics.roles`: ``prepare`` before serving, ``start``
and ``stop`` around it.
"""
