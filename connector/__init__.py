"""WhatsApp connectors: transports (sandbox and neonize), the relay loop of one number, the supervisor.

Talks to Redis only. Shares ``connector.contracts`` with the product and reads its settings from
``workbench.store.config``; imports nothing else of it (pyproject.toml's import contracts).
"""
