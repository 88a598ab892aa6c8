-- Fixture for the Go fetcher: python3 -c "import sqlite3; c=sqlite3.connect('pages.db'); c.executescript(open('pages.sql').read())"
CREATE TABLE pages (
  id INTEGER PRIMARY KEY,
  url TEXT NOT NULL,
  status INTEGER NOT NULL,
  title TEXT,
  extract TEXT,
  bytes INTEGER NOT NULL,
  links INTEGER NOT NULL
);
