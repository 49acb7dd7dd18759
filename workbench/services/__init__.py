"""Floor 3, the services: one module per domain, each call taking the acting user and checking workspace and
role. The only API of the panel and of notebooks.
"""
