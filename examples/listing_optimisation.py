"""Listing optimisation: rewrite a product title so shoppers' searches find it.

The pipeline ships inside the package, so `xray demo` runs it from any install; read it
in xray/demo/listing_optimisation.py. This file runs it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python examples/listing_optimisation.py --runs 5
"""

from xray.demo.listing_optimisation import main

if __name__ == "__main__":
    main()
