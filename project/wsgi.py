import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from whitenoise import WhiteNoise

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()
# The demo's static files (the admin's CSS and JS) are served by the app itself, whatever DEBUG says:
# `make admin` collects them into STATIC_ROOT first. A site that installs poolbench serves its own.
if os.path.isdir(settings.STATIC_ROOT):
    application = WhiteNoise(application, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)
