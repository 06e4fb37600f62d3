"""A Flower ClientApp around FakeNode, for the end-to-end test; node config: client=<i> clients=<n>."""

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from fake_node import FakeNode

app = ClientApp()


def handle(message: Message, context: Context) -> Message:
    return FakeNode(int(context.node_config["client"]), int(context.node_config["clients"])).handle(message)


app.query()(handle)
app.train()(handle)
app.evaluate()(handle)
