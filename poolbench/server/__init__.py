"""What runs inside a trial server (gunicorn, started by the sweep): the WSGI entry point with
poolbench's endpoints and instrumentation, and the fork server the trial servers are forked from.
Nothing here is imported by the command's process."""
