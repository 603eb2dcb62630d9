"""IPython startup file of the kernels that build and test the book (the Makefile
copies it into the IPYTHONDIR it sets). The chapters' long cells show tqdm progress
bars to readers who run them; a built page is static, so the builds and tests set
TQDM_DISABLE=1. tqdm's notebook bar (what ``tqdm.auto`` picks in a kernel) passes
``disable=False`` itself and ignores that variable: honour it here."""

import os

if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
    from functools import partialmethod

    from tqdm.notebook import tqdm as _notebook_tqdm

    _notebook_tqdm.__init__ = partialmethod(_notebook_tqdm.__init__, disable=True)
    del partialmethod, _notebook_tqdm
del os
