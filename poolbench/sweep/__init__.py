"""The sweep, run by ``manage.py poolbench`` in the command's own process: plan, preflight, one trial
after another (each a trial server child and a Locust child), and the rows they leave."""
