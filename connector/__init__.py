"""WhatsApp connectors: transports (sandbox, later neonize), the relay loop of one number, the supervisor.

Talks to Redis only and shares nothing with the product but ``connector.contracts``.
"""
