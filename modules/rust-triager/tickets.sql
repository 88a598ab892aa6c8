-- Fixture for the Rust ticket triager: python3 -c "import sqlite3; c=sqlite3.connect('tickets.db'); c.executescript(open('tickets.sql').read())"
CREATE TABLE tickets (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  priority INTEGER NOT NULL,      -- 1 highest .. 4 lowest
  status TEXT NOT NULL,           -- open | closed
  opened_days INTEGER NOT NULL,   -- age in days
  customer TEXT
);
INSERT INTO tickets VALUES
 (101, 'Checkout outage in EU region', 1, 'open', 0, 'Acme GmbH'),
 (102, 'Invoice PDF shows wrong VAT', 2, 'open', 3, 'Globex'),
 (103, 'Password reset mail delayed', 3, 'open', 12, NULL),
 (104, 'Possible security issue: session not revoked on logout', 2, 'open', 1, 'Initech'),
 (105, 'Typo on pricing page', 4, 'open', 30, NULL),
 (106, 'Export to CSV drops the last row', 3, 'open', 9, 'Umbrella'),
 (107, 'Old ticket already fixed', 2, 'closed', 40, 'Globex');
