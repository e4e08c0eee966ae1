"""SQL lives here. Repositories flush but never commit: the caller owns the transaction."""
