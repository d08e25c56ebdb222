"""Dynamic providers: one module per remote object kind, one HTTP client per remote service.

State refers to providers by module and class name (docs/pulumi.md §2.2): keep these module
paths stable and free of import side effects.
"""
