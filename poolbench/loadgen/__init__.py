"""What runs inside Locust (a child of the sweep, or a remote worker): the plugin that draws the
measured window, and the default locustfile. Never imported by the Django process (gevent)."""
