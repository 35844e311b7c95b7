"""How plugins are found, loaded and called: the component registry, plugin import, hook tracing, event hooks."""
