"""Allow ``python -m singlestrip_bids``."""

from singlestrip_bids.cli.run import main

if __name__ == "__main__":
    raise SystemExit(main())
