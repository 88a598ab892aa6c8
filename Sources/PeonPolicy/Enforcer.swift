// The authorization engine: see issue 3.
