// The mediator: see issue 5.
