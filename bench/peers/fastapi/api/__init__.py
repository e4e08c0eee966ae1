"""The reference peer: the seed's FastAPI design, written the way its users would write it."""
