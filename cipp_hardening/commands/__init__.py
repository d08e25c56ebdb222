"""What a user runs: one module per `cipp-hardening` subcommand, each a thin layer over the rules.

Every module has `main(argv) -> int`; its return value is the process's exit code (see
docs/commands.md for each command's codes). The rules they call live beside this package
(config, graph_render, evaluator, scenarios, exclusion, cipp_api, rollout).
"""
