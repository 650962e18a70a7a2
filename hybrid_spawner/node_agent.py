"""``python -m hybrid_spawner.node_agent``: the stable command node images and boot scripts run.

The agent lives in :mod:`hybrid_spawner.bootstrap.node_agent`; this name stays so that a node
image built for any release keeps booting under a newer hub.
"""

import sys

from hybrid_spawner.bootstrap.node_agent import main

if __name__ == "__main__":
    sys.exit(main())
