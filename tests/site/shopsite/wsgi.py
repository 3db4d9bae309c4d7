"""The shop's custom WSGI entry point (WSGI_APPLICATION = "shopsite.wsgi.shop_application")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
_django = get_wsgi_application()


def shop_application(environ, start_response):
    """Marks the request in the WSGI environ and answers with a header, around Django's handler."""
    environ["shop.wsgi"] = "shop_application"

    def start(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Shop-Wsgi", "shop_application")], exc_info)

    return _django(environ, start)
