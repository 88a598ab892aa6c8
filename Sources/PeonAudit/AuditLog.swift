// The audit chain: see issue 4.
