"""The database: engine settings for SQLite and PostgreSQL, the schema, the Store that owns them, and migrations."""
