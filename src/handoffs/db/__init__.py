"""The database: engine, sessions, migrations, and the tables."""
