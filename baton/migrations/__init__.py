"""Alembic migrations for Baton's relational store (models in ``baton.store``).

The script location is this package, so migrations run from an installed package without an
``alembic.ini``; ``baton.db`` builds the Alembic configuration in code.
"""
