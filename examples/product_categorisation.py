"""Product categorisation: file a new product under one of ~5,000 taxonomy categories.

The pipeline ships inside the package, so `xray demo` runs it from any install; read it
in xray/demo/product_categorisation.py. This file runs it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python examples/product_categorisation.py --runs 5
"""

from xray.demo.product_categorisation import main

if __name__ == "__main__":
    main()
