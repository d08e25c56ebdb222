"""Loopback stand-ins for the remote side: Microsoft Graph, the CIPP-API and their identity platform.

Real HTTPS servers (trustme certificates) that behave as the real services do, as docs/graph-ca.md and
docs/cipp-api.md describe them. The tests, `cipp-hardening demo` and the benchmarks use them; they never
import the product (cipp_hardening, components, dynamic_providers), so the product cannot lean on them.
"""
