"""Thin HTTP routers: each parses, calls the library, and shapes the answer."""
