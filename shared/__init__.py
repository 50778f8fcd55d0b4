"""The CRP platform's common library: the one way of doing each cross-cutting thing."""
