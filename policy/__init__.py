"""The CrossGuard policy pack (policies.py); `pulumi preview --policy-pack policy` runs __main__.py."""
