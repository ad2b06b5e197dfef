"""Who is calling: JWT and cookie sessions, CSRF, passwords."""
