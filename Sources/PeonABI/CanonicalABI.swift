// The canonical ABI: see issue 5.
