"""Unused: the nodes under test are TypeScript. Flower's app format requires a ClientApp."""

from flwr.clientapp import ClientApp

app = ClientApp()
