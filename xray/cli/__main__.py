"""``python -m xray.cli`` is the ``xray`` command."""

from xray.cli._app import main

if __name__ == "__main__":
    raise SystemExit(main())
