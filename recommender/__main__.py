"""The `recommender` command: forward to a warm process when one serves this config (see
`warm_client`), else run the full command line."""

import os
import sys

from recommender.app.warm_client import forwarded


def main() -> None:
    # Everything the command writes (database, its log, models, previews, sockets) is its
    # owner's alone, whatever umask it was started with: it holds readers' addresses and clicks.
    os.umask(0o077)
    code = forwarded(sys.argv[1:])
    if code is None:
        from recommender.app.cli import main as full_command_line

        full_command_line()
        return
    sys.exit(code)


if __name__ == "__main__":
    main()
