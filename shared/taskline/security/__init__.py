"""Password hashing (bcrypt) and access tokens (JWT)."""
