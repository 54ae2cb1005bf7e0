# Makes the revisions part of the installed package; Alembic itself skips this file.
