"""Test-only stand-ins for provider plugins that cannot be built here (see azuread_standin.py)."""
