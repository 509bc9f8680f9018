"""People and trust: users, roles, area scopes, sessions, API tokens and the hash-chained audit log."""
