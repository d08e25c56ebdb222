"""Development tools: the engine build (tools/engine) and the azuread stand-in plugin (tools/standin)."""
