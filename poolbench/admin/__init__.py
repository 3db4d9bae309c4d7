"""Read-only admin for sweeps and trials: lists, a sweep page with charts, a trial page, a compare page
and exports.

Measured data is never edited from here: add, change and delete are refused for everyone, so Django shows
its "view" pages. Who may look is Django's own business: staff users with the ``view`` permission.
"""

from poolbench.admin import sweeps, trials  # noqa: F401  (registers the model admins)
