"""Flower's app bundle must name a ClientApp, but pfedprompt's clients are TypeScript (`pfedprompt node`).

This one only fails, clearly, if a Python SuperNode is ever pointed at the app.
"""

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

app = ClientApp()

REFUSAL = (
    "pfedprompt's clients are TypeScript SuperNodes: start one with `pfedprompt node` "
    "(a Python SuperNode cannot run this app)"
)


@app.query()
def query(message: Message, context: Context) -> Message:
    raise RuntimeError(REFUSAL)


@app.train()
def train(message: Message, context: Context) -> Message:
    raise RuntimeError(REFUSAL)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    raise RuntimeError(REFUSAL)
