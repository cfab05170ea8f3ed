"""Thin RQ entry points: ids in, no ORM objects; the work lives in connect_app."""
