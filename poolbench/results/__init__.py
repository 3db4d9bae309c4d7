"""What a sweep leaves: analysis (by size, recommendation, gates), terminal tables, charts and
exports (HTML, CSV, JSON)."""
