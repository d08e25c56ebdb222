"""One HTTP client per remote service (Microsoft Graph, the CIPP-API) and the credentials they use.

The rules, the dynamic providers and the commands all call these; nothing here is pickled into state.
See docs/layout.md.
"""
