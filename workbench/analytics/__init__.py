"""The analytics read side: a DuckDB copy of PostgreSQL's rows (``store``), the metric definitions over it
(``metrics``), the reports the panel and the notebooks share (``reports``) and the demo history (``demo``).

This floor sits above the services (it uses ``Actor`` and the workspace settings) and below the entry points
(pages, the worker's refresh job, notebooks). docs/architecture.md, "Analytics", says why DuckDB is fed this way.
"""
