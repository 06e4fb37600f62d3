"""Unused: the node under test is TypeScript. Flower's app format requires a ClientApp."""

from flwr.clientapp import ClientApp

app = ClientApp()
