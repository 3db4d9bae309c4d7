from django.apps import AppConfig
from django.db import connections
from django.db.backends.signals import connection_created


def remember_search_path(sender, connection, **kwargs):
    """What many sites do on connect: look the connection up by alias (as django.contrib.postgres
    does) and run a statement on it. The books views check what it recorded."""
    if connection.vendor != "postgresql":
        return
    conn = connections[connection.alias]
    with conn.cursor() as cur:
        cur.execute("SHOW search_path")
        conn.shop_search_path = cur.fetchone()[0]


class BooksConfig(AppConfig):
    name = "books"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        connection_created.connect(remember_search_path, dispatch_uid="books.remember_search_path")
