"""The web process of a Python function image:
    python3 /layers/dev.kiln.python/framework/serve.py
Environment (the buildpack sets defaults in the image):
    FUNC_SOURCE (or FUNCTION_SOURCE)  the file that defines the function
    FUNC_NAME (or FUNCTION_TARGET)    the function to serve
    FUNC_SIGNATURE_TYPE (or FUNCTION_SIGNATURE_TYPE)  http (default) or cloudevent
    PORT                              port to listen on (default 8080)
"""

import sys

from kiln_functions.server import main

if __name__ == "__main__":
    sys.exit(main())
