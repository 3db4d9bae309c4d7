"""Measuring during a trial, in the command's process: samplers of the database and of CPU, and
statistics over what Locust and the trial server reported."""
