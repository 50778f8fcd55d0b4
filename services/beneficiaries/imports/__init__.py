"""Bulk import of beneficiaries (CSV or JSON), run as a background job through the single-registration path."""
