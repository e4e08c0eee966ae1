"""Fixtures the function tests share with the HTTP tests."""

from tests.http.lists_support import make_account  # noqa: F401 - accounts for list scenarios
