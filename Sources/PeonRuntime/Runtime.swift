// Running modules: see issue 2.
