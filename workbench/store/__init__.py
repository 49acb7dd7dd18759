"""Floor 2, storage: settings, the database (engine, sessions, models, migrations), Redis keys and the
embedded servers. Knows nothing of funnels, services or pages.
"""
