"""The bot: ``core`` (the pure funnel engine) and ``worker`` (the RQ jobs that drive it). See docs/architecture.md."""
