"""The CRP API gateway: one edge in front of every service (routing, auth, limits, one OpenAPI)."""
