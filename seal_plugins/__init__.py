"""Built-in plugins of the SEAL framework, installed as the import package ``seal_plugins``."""
