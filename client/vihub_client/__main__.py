"""``python -m vihub_client``: the ``vihub`` command line."""

from vihub_client.cli import main

main()
