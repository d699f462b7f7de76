"""Meltano as users run it: projects, loaders, the example projects, orchestration, the plugin definitions."""
