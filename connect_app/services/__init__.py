"""Application services: the logic behind the admin API, free of Flask."""
