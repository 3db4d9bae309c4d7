class ShopMiddleware:
    """The site's own middleware: marks the request, and names the settings flavour in a header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings

        request.shop_middleware = True
        response = self.get_response(request)
        response["X-Shop-Flavour"] = settings.SHOP_FLAVOUR
        return response
