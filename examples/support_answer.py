"""Support answer: answer a customer's ticket from the help centre, in their locale.

The pipeline ships inside the package, so `xray demo` runs it from any install; read it
in xray/demo/support_answer.py. This file runs it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python examples/support_answer.py --runs 8
"""

from xray.demo.support_answer import main

if __name__ == "__main__":
    main()
