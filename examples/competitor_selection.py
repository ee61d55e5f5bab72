"""Competitor selection: which product is the closest competitor of a seller's product?

The pipeline ships inside the package, so `xray demo` runs it from any install; read it
in xray/demo/competitor_selection.py. This file runs it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python examples/competitor_selection.py --runs 5
"""

from xray.demo.competitor_selection import main

if __name__ == "__main__":
    main()
