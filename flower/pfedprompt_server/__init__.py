"""pfedprompt's Flower ServerApp: the server half of a federation whose nodes are `pfedprompt node`."""

# The project's version (package.json); results.json records it as `code.version`.
__version__ = "0.1.0"
