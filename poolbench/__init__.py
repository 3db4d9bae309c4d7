"""poolbench: measure the right database connection pool size for a Django site."""

__version__ = "0.1.0"
