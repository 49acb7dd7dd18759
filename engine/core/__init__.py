"""Floor 2, the pure funnel core: definitions, node types, templates, matching and the test-chat preview.

No database, no Redis, no clock: everything arrives as arguments, so all of it is testable in memory.
"""
