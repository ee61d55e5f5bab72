"""``python -m api`` starts the X-Ray server, exactly as ``python -m xray.api`` does."""

from xray.api.__main__ import main

if __name__ == "__main__":
    raise SystemExit(main())
