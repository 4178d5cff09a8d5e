"""``python -m pybridge.mirror serve --root DIR``."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
