"""Storage: SQLAlchemy 2 models, migrations, and the reads and writes every other stage makes."""
