from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponseServerError
from django.shortcuts import get_object_or_404, render

from .models import Book


def _not_through_the_shop(request):
    # The shop's pages answer only through its own WSGI entry point and middleware: a server
    # that bypassed either would turn every request into a failure.
    if request.META.get("shop.wsgi") != "shop_application" or not getattr(request, "shop_middleware", False):
        return HttpResponseServerError("not served by the shop's own WSGI application and middleware")
    connection.ensure_connection()
    # The URL's OPTIONS (search_path) reached this connection, and the site's connection_created
    # receiver ran on it (it records the setting).
    if getattr(connection, "shop_search_path", None) != "shop,public":
        return HttpResponseServerError(
            "the connection lacks the site's OPTIONS or its connection_created receiver"
        )
    return None


def book_list(request):
    return _not_through_the_shop(request) or render(request, "books/list.html", {"books": Book.objects.all()})


def book_detail(request, pk):
    return _not_through_the_shop(request) or render(
        request, "books/detail.html", {"book": get_object_or_404(Book, pk=pk)}
    )


@login_required
def private(request):
    return _not_through_the_shop(request) or render(
        request, "books/private.html", {"count": Book.objects.count()}
    )


def broken(request):
    raise RuntimeError("the warehouse is on fire")
