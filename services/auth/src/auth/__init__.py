"""gridbot auth service: users, passwords, access/refresh tokens, logout revocation."""
