"""Built-in domains of the SEAL framework, installed as the import package ``seal_domains``."""
