"""Floor 4, the worker runtime: RQ entry points (inbound drain, funnel timers, sweep) and the dispatch of stored
messages to funnels and the default reply. Drives the services; nothing below imports it.
"""
