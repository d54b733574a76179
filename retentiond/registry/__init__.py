"""The registry: SQLAlchemy models, connections and migrations (SQLite and PostgreSQL)."""
