// The capabilities: see issue 5.
