"""Record what users' libraries already do, without code: one module per library.

- ``xray.integrations.openai``: ``instrument(client)`` records each chat completion and
  responses call of an OpenAI client as an ``llm`` step (``pip install "xray[openai]"``).

Each module imports its library only when it is imported itself.
"""

__all__: list[str] = []
