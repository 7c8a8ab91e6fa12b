"""DR4SR / DR4SR+ on Ray: dataset regeneration for sequential recommendation."""
__version__ = "0.1.0"
