"""Docker-free local development: embedded PostgreSQL, a local API Gateway, local invoke."""
