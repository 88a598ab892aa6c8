-- The table py-researcher queries: findings(topic, score, note).
CREATE TABLE findings (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, score INTEGER NOT NULL, note TEXT NOT NULL);
INSERT INTO findings (topic, score, note) VALUES
  ('audit', 3, 'write-ahead entries before every effect'),
  ('audit', 2, 'checkpoints are signed'),
  ('policy', 3, 'default deny'),
  ('policy', 1, 'globs follow Go path.Match'),
  ('wasm', 2, 'components need wasmtime');
CREATE TABLE secrets (id INTEGER PRIMARY KEY, value TEXT);
INSERT INTO secrets (value) VALUES ('not for agents');
