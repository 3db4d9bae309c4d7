"""The demo site's WSGI app, except that it fails to import in the trial whose pool size is
POOLBENCH_TEST_BROKEN_SIZE: a real import error inside a real gunicorn child, for one trial."""

import json
import os

_broken = os.environ.get("POOLBENCH_TEST_BROKEN_SIZE", "")
if _broken:
    with open(os.environ["POOLBENCH_TRIAL_FILE"], encoding="utf-8") as fh:
        _pool = (json.load(fh)["database"].get("OPTIONS") or {}).get("pool") or {}
    if str(_pool.get("max_size")) == _broken:
        raise ImportError(f"tests.faulty_wsgi: this site cannot load with pool size {_broken}")

from project.wsgi import application  # noqa: E402,F401
